//! Test tool: serves the upstream `rvagent-a2a` A2A server on loopback, so the
//! Python A2A client can be tested against a real rvAgent peer.
//!
//! ```text
//! rvagent-peer [--port 0] [--seed-hex <64 hex chars>] [--unsigned]
//! ```
//! Binds 127.0.0.1:<port> (0 = ephemeral), prints one line
//! `READY <base_url> <agent_id_hex>` to stdout, then serves until killed or
//! until stdin reaches EOF (so a crashed test harness leaves no orphan; run it
//! with a pipe on stdin, not /dev/null). The card is signed with the crate's
//! own `identity::sign_card` unless `--unsigned`. See `runner.rs` for the
//! task behaviours.

mod runner;

use std::io::Write;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use ed25519_dalek::SigningKey;
use rvagent_a2a::budget::{BudgetLedger, GlobalBudget};
use rvagent_a2a::executor::Executor;
use rvagent_a2a::identity::{agent_id_from_pubkey, sign_card, verify_card};
use rvagent_a2a::server::{A2aServer, A2aServerConfig};
use rvagent_a2a::{AgentCapabilities, AgentCard, AgentProvider, AgentSkill, AuthScheme};
use serde_json::json;
use tokio::io::AsyncReadExt;

use runner::PeerRunner;

/// Default key seed: fixed, so the agent id is stable across runs.
const DEFAULT_SEED: [u8; 32] = [7; 32];

struct Args {
    port: u16,
    seed: [u8; 32],
    signed: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        seed: DEFAULT_SEED,
        signed: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--port" => {
                let v = it.next().ok_or("--port needs a value")?;
                args.port = v.parse().map_err(|e| format!("--port {v}: {e}"))?;
            }
            "--seed-hex" => {
                let v = it.next().ok_or("--seed-hex needs a value")?;
                let bytes = hex::decode(&v).map_err(|e| format!("--seed-hex: {e}"))?;
                args.seed = bytes
                    .try_into()
                    .map_err(|_| "--seed-hex must be 64 hex chars (32 bytes)")?;
            }
            "--unsigned" => args.signed = false,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn build_card(base_url: &str) -> AgentCard {
    AgentCard {
        name: "rvagent-peer".into(),
        description: "rvagent-a2a 0.1.0 test peer: echo, stream <N>, sleep <ms>".into(),
        url: base_url.into(),
        provider: AgentProvider {
            organization: "ruvector-py tests".into(),
            url: None,
        },
        version: env!("CARGO_PKG_VERSION").into(),
        capabilities: AgentCapabilities {
            streaming: true,
            push_notifications: false,
        },
        skills: vec![AgentSkill {
            id: "echo".into(),
            name: "Echo".into(),
            description: "Echoes the first text part; `stream <N>` and `sleep <ms>` for tests."
                .into(),
            tags: vec!["test".into()],
            input_modes: vec!["text/plain".into()],
            output_modes: vec!["text/plain".into()],
        }],
        authentication: AuthScheme { schemes: vec![] },
        // The signature goes into metadata.ruvector.signature, and the
        // verifier strips only that key, leaving `"ruvector":{}`. Signing
        // must therefore see the same `{}`, not a null metadata.
        metadata: json!({ "ruvector": {} }),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rvagent-peer: {e}");
            eprintln!("usage: rvagent-peer [--port 0] [--seed-hex <64 hex chars>] [--unsigned]");
            return ExitCode::from(2);
        }
    };

    // Bind first: the card must carry the real URL, and the port is only
    // known once bound when it is 0.
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("rvagent-peer: bind 127.0.0.1:{}: {e}", args.port);
            return ExitCode::FAILURE;
        }
    };
    let addr = listener
        .local_addr()
        .expect("bound listener has an address");
    let base_url = format!("http://{addr}");

    let key = SigningKey::from_bytes(&args.seed);
    let agent_id = agent_id_from_pubkey(&key.verifying_key());
    let mut card = build_card(&base_url);
    if args.signed {
        let sig = sign_card(&card, &key).expect("sign card");
        card.metadata["ruvector"]["signature"] = serde_json::to_value(sig).expect("signature");
        // Check with the crate's own verifier, so a wrong card never serves.
        let verified = verify_card(&card).expect("signed card verifies");
        assert_eq!(verified, agent_id);
    } else {
        card.metadata = serde_json::Value::Null;
    }
    let card_bytes = serde_json::to_vec(&card).expect("serialize card");

    let state = Arc::new(OnceLock::new());
    let runner = Arc::new(PeerRunner::new(state.clone()));
    let server = A2aServer::new(
        card,
        card_bytes,
        Arc::new(Executor::Local(runner)),
        Arc::new(BudgetLedger::new(GlobalBudget::default())),
        A2aServerConfig::default(),
    );
    let _ = state.set(server.state().clone());

    println!("READY {base_url} {agent_id}");
    let _ = std::io::stdout().flush();

    tokio::select! {
        r = axum::serve(listener, server.router()) => {
            if let Err(e) = r {
                eprintln!("rvagent-peer: serve: {e}");
                return ExitCode::FAILURE;
            }
        }
        _ = stdin_eof() => {}
    }
    ExitCode::SUCCESS
}

/// Resolves when stdin is closed (or unreadable): the harness is gone.
async fn stdin_eof() {
    let mut stdin = tokio::io::stdin();
    let mut buf = [0u8; 256];
    while let Ok(n) = stdin.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}
