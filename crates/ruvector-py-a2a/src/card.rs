//! Agent-card signatures.
//!
//! * **A2A (JWS)**: each entry of `card.signatures` is a detached JWS
//!   (`protected`, `signature`) over the RFC 8785 canonical card with
//!   `signatures` removed and empty strings/lists/objects dropped.
//!   Algorithms: EdDSA (Ed25519), ES256, ES384, RS256/384/512, PS256/384/512;
//!   `none` and HMAC are refused. The key comes from the caller's
//!   `trusted_keys` (matched by `kid`) or, when none are given, from the
//!   `jwk` of the protected header — then the key's agent id is returned so
//!   the caller can pin it (`expected_agent_id`).
//! * **rvAgent**: `metadata.ruvector.signature = {alg: "ed25519-hex",
//!   signature, public_key}` over the sorted-key compact card without the
//!   signature; agent id = hex(SHAKE-256(public key))[..32 bytes].
//!
//! Verification works on the parsed card that is handed to the caller, so
//! no field can be added beside a valid signature. One A2A limit remains:
//! the signed form drops empty values, so a security requirement without
//! scopes (`{"schemes": {"bearer": {"list": []}}}`) is not covered by any
//! signature — it is kept as served (the server enforces its own card
//! whatever a client was shown).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use ring::signature::{self, KeyPair, UnparsedPublicKey};
use serde_json::{json, Map, Value};
use sha3::digest::{ExtendableOutput, Update, XofReader};

use crate::error::{Error, FromBase, Result};

use crate::json::{canonical, clean_empty, from_py_arg, to_py};
use crate::util::{opt_text, text};

fn bad(msg: impl Into<String>) -> Error {
    Error::CardSignatureInvalid(msg.into())
}

/// hex(SHAKE-256(bytes)) truncated to 32 bytes: the agent id of a key.
pub fn agent_id(key_bytes: &[u8]) -> String {
    let mut h = sha3::Shake256::default();
    h.update(key_bytes);
    let mut out = [0u8; 32];
    h.finalize_xof().read(&mut out);
    hex(&out)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.is_ascii() {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

fn b64u(s: &str) -> Result<Vec<u8>> {
    let t = s.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| bad("a signature field is not base64url"))
}

/// A public key from a JWK, checked for the JWS algorithm.
struct PubKey {
    alg: &'static dyn signature::VerificationAlgorithm,
    /// Key bytes in ring's format (raw Ed25519 / uncompressed EC point).
    raw: Vec<u8>,
    /// RSA components and parameters when the key is RSA.
    rsa: Option<(Vec<u8>, Vec<u8>, &'static signature::RsaParameters)>,
    id_bytes: Vec<u8>,
}

fn jwk_str<'a>(jwk: &'a Map<String, Value>, k: &str) -> Result<&'a str> {
    jwk.get(k)
        .and_then(Value::as_str)
        .ok_or_else(|| bad(format!("the JWK has no string field {k:?}")))
}

fn key_for(alg: &str, jwk: &Map<String, Value>) -> Result<PubKey> {
    let kty = jwk_str(jwk, "kty")?;
    let strip = |v: Vec<u8>| -> Vec<u8> {
        let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        v[i..].to_vec()
    };
    match (alg, kty) {
        ("EdDSA" | "Ed25519", "OKP") => {
            if jwk_str(jwk, "crv")? != "Ed25519" {
                return Err(bad("EdDSA signatures need an Ed25519 key"));
            }
            let x = b64u(jwk_str(jwk, "x")?)?;
            if x.len() != 32 {
                return Err(bad("an Ed25519 key must be 32 bytes"));
            }
            Ok(PubKey {
                alg: &signature::ED25519,
                id_bytes: x.clone(),
                raw: x,
                rsa: None,
            })
        }
        ("ES256" | "ES384", "EC") => {
            let (crv, n, a): (&str, usize, &'static dyn signature::VerificationAlgorithm) =
                if alg == "ES256" {
                    ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED)
                } else {
                    ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED)
                };
            if jwk_str(jwk, "crv")? != crv {
                return Err(bad(format!("{alg} signatures need a {crv} key")));
            }
            let (x, y) = (b64u(jwk_str(jwk, "x")?)?, b64u(jwk_str(jwk, "y")?)?);
            if x.len() != n || y.len() != n {
                return Err(bad(format!("a {crv} key has {n}-byte coordinates")));
            }
            let mut raw = vec![4u8];
            raw.extend_from_slice(&x);
            raw.extend_from_slice(&y);
            Ok(PubKey {
                alg: a,
                id_bytes: raw.clone(),
                raw,
                rsa: None,
            })
        }
        ("RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512", "RSA") => {
            let a: &'static signature::RsaParameters = match alg {
                "RS256" => &signature::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &signature::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &signature::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &signature::RSA_PSS_2048_8192_SHA256,
                "PS384" => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            let n = strip(b64u(jwk_str(jwk, "n")?)?);
            let e = strip(b64u(jwk_str(jwk, "e")?)?);
            Ok(PubKey {
                alg: &signature::ED25519,
                id_bytes: n.clone(),
                raw: Vec::new(),
                rsa: Some((n, e, a)),
            })
        }
        ("none", _) => Err(bad("unsigned JWS (alg = none) is refused")),
        (a, _) if a.starts_with("HS") => Err(bad(
            "HMAC card signatures are refused (a shared secret proves no identity)",
        )),
        (a, k) => Err(bad(format!(
            "unsupported signature algorithm {a:?} for key type {k:?}"
        ))),
    }
}

impl PubKey {
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        match &self.rsa {
            Some((n, e, params)) => signature::RsaPublicKeyComponents { n, e }
                .verify(params, msg, sig)
                .is_ok(),
            None => UnparsedPublicKey::new(self.alg, &self.raw)
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

/// The shape of an A2A 1.0 `AgentCard` (its protobuf fields, JSON names).
/// Signers that work on the protobuf (the official SDK) sign only these
/// fields; anything else a server adds (0.3 compatibility fields) is
/// unsigned and is dropped when a signature only verifies without it.
enum Shape {
    /// A scalar (string, number, bool).
    Leaf,
    /// Free-form JSON (`google.protobuf.Struct`/`Value`).
    Any,
    Obj(&'static [(&'static str, Shape)]),
    List(&'static Shape),
    Map(&'static Shape),
}

const STRINGS: Shape = Shape::List(&Shape::Leaf);
const SEC_REQ: Shape = Shape::Obj(&[("schemes", Shape::Map(&Shape::Obj(&[("list", STRINGS)])))]);
const FLOW: Shape = Shape::Obj(&[
    ("authorizationUrl", Shape::Leaf),
    ("tokenUrl", Shape::Leaf),
    ("refreshUrl", Shape::Leaf),
    ("deviceAuthorizationUrl", Shape::Leaf),
    ("scopes", Shape::Map(&Shape::Leaf)),
    ("pkceRequired", Shape::Leaf),
]);
const SCHEME: Shape = Shape::Obj(&[
    (
        "apiKeySecurityScheme",
        Shape::Obj(&[
            ("description", Shape::Leaf),
            ("location", Shape::Leaf),
            ("name", Shape::Leaf),
        ]),
    ),
    (
        "httpAuthSecurityScheme",
        Shape::Obj(&[
            ("description", Shape::Leaf),
            ("scheme", Shape::Leaf),
            ("bearerFormat", Shape::Leaf),
        ]),
    ),
    (
        "oauth2SecurityScheme",
        Shape::Obj(&[
            ("description", Shape::Leaf),
            (
                "flows",
                Shape::Obj(&[
                    ("authorizationCode", FLOW),
                    ("clientCredentials", FLOW),
                    ("implicit", FLOW),
                    ("password", FLOW),
                    ("deviceCode", FLOW),
                ]),
            ),
            ("oauth2MetadataUrl", Shape::Leaf),
        ]),
    ),
    (
        "openIdConnectSecurityScheme",
        Shape::Obj(&[
            ("description", Shape::Leaf),
            ("openIdConnectUrl", Shape::Leaf),
        ]),
    ),
    (
        "mtlsSecurityScheme",
        Shape::Obj(&[("description", Shape::Leaf)]),
    ),
]);
const CARD_V1: Shape = Shape::Obj(&[
    ("name", Shape::Leaf),
    ("description", Shape::Leaf),
    (
        "supportedInterfaces",
        Shape::List(&Shape::Obj(&[
            ("url", Shape::Leaf),
            ("protocolBinding", Shape::Leaf),
            ("tenant", Shape::Leaf),
            ("protocolVersion", Shape::Leaf),
        ])),
    ),
    (
        "provider",
        Shape::Obj(&[("url", Shape::Leaf), ("organization", Shape::Leaf)]),
    ),
    ("version", Shape::Leaf),
    ("documentationUrl", Shape::Leaf),
    (
        "capabilities",
        Shape::Obj(&[
            ("streaming", Shape::Leaf),
            ("pushNotifications", Shape::Leaf),
            (
                "extensions",
                Shape::List(&Shape::Obj(&[
                    ("uri", Shape::Leaf),
                    ("description", Shape::Leaf),
                    ("required", Shape::Leaf),
                    ("params", Shape::Any),
                ])),
            ),
            ("extendedAgentCard", Shape::Leaf),
        ]),
    ),
    ("securitySchemes", Shape::Map(&SCHEME)),
    ("securityRequirements", Shape::List(&SEC_REQ)),
    ("defaultInputModes", STRINGS),
    ("defaultOutputModes", STRINGS),
    (
        "skills",
        Shape::List(&Shape::Obj(&[
            ("id", Shape::Leaf),
            ("name", Shape::Leaf),
            ("description", Shape::Leaf),
            ("tags", STRINGS),
            ("examples", STRINGS),
            ("inputModes", STRINGS),
            ("outputModes", STRINGS),
            ("securityRequirements", Shape::List(&SEC_REQ)),
        ])),
    ),
    ("signatures", Shape::Any),
    ("iconUrl", Shape::Leaf),
]);

/// The card cut down to the 1.0 schema; `false` flags are dropped (a
/// protobuf signer does not see them).
fn project(v: &Value, shape: &Shape) -> Option<Value> {
    match (shape, v) {
        (Shape::Any, _) => Some(v.clone()),
        (Shape::Leaf, Value::Bool(false)) => None,
        (Shape::Leaf, Value::Object(_) | Value::Array(_)) => None,
        (Shape::Leaf, _) => Some(v.clone()),
        (Shape::List(item), Value::Array(a)) => Some(Value::Array(
            a.iter().filter_map(|x| project(x, item)).collect(),
        )),
        (Shape::Map(item), Value::Object(o)) => Some(Value::Object(
            o.iter()
                .filter_map(|(k, x)| project(x, item).map(|p| (k.clone(), p)))
                .collect(),
        )),
        (Shape::Obj(fields), Value::Object(o)) => Some(Value::Object(
            fields
                .iter()
                .filter_map(|(name, sh)| {
                    o.get(*name)
                        .and_then(|x| project(x, sh))
                        .map(|p| ((*name).to_owned(), p))
                })
                .collect(),
        )),
        _ => None,
    }
}

/// The card with only its A2A 1.0 fields.
pub fn project_v1(card: &Value) -> Value {
    project(card, &CARD_V1).unwrap_or_else(|| json!({}))
}

/// Security requirements usually have empty scope lists
/// (`{"schemes": {"bearer": {"list": []}}}`), and A2A drops empty values
/// before signing, so cleaning the verified card would drop the whole
/// requirement: the client would see an agent that asks for no
/// credentials. Put the requirements back as served, cut to their schema:
/// they differ from the signed content only by such empty values (which no
/// card signature covers).
fn restore_requirements(cleaned: &mut Value, served: &Value) {
    let reqs = |v: &Value| {
        v.get("securityRequirements")
            .and_then(|r| project(r, &Shape::List(&SEC_REQ)))
            .filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))
    };
    if let (Some(o), Some(r)) = (cleaned.as_object_mut(), reqs(served)) {
        o.insert("securityRequirements".into(), r);
    }
    let served_skills = served.get("skills").and_then(Value::as_array);
    let cleaned_skills = cleaned.get_mut("skills").and_then(Value::as_array_mut);
    if let (Some(ss), Some(cs)) = (served_skills, cleaned_skills) {
        if ss.len() == cs.len() {
            for (s, c) in ss.iter().zip(cs.iter_mut()) {
                if let (Some(o), Some(r)) = (c.as_object_mut(), reqs(s)) {
                    o.insert("securityRequirements".into(), r);
                }
            }
        }
    }
}

/// The verified card: `signed` without empty values, its security
/// requirements kept.
fn verified_card(signed: &Value) -> Option<Value> {
    let mut c = clean_empty(signed)?;
    restore_requirements(&mut c, signed);
    Some(c)
}

/// The bytes a JWS card signature covers (base64url of the canonical card).
fn jws_payload(card: &Map<String, Value>) -> String {
    let mut c = card.clone();
    c.remove("signatures");
    let cleaned = clean_empty(&Value::Object(c)).unwrap_or_else(|| json!({}));
    URL_SAFE_NO_PAD.encode(canonical(&cleaned))
}

/// Outcome of a successful verification.
pub struct Verified {
    /// The card as verified: the input, or its 1.0 projection when only
    /// that is covered by the signature (unsigned extras dropped).
    pub card: Option<Value>,
    pub scheme: &'static str,
    pub agent_id: Option<String>,
    pub kid: Option<String>,
    pub alg: Option<String>,
}

fn verify_jws(
    card: &Map<String, Value>,
    sigs: &[Value],
    trusted: &[Map<String, Value>],
    expected_id: Option<&str>,
) -> Result<Verified> {
    let payload = jws_payload(card);
    let mut reasons: Vec<String> = Vec::new();
    for (i, s) in sigs.iter().enumerate().take(16) {
        let attempt = (|| -> Result<Verified> {
            let prot = s
                .get("protected")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("no \"protected\" header"))?;
            let sig = b64u(
                s.get("signature")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad("no \"signature\""))?,
            )?;
            let header: Value = serde_json::from_slice(&b64u(prot)?)
                .map_err(|_| bad("the protected header is not JSON"))?;
            let header = header
                .as_object()
                .ok_or_else(|| bad("the protected header is not a JSON object"))?;
            if header.contains_key("crit") {
                return Err(bad(
                    "the protected header has \"crit\" extensions this client does not implement",
                ));
            }
            let alg = header
                .get("alg")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("the protected header has no \"alg\""))?;
            let kid = header.get("kid").and_then(Value::as_str);
            let mut candidates: Vec<&Map<String, Value>> = Vec::new();
            if !trusted.is_empty() {
                for k in trusted {
                    match (kid, k.get("kid").and_then(Value::as_str)) {
                        (Some(a), Some(b)) if a != b => {}
                        _ => candidates.push(k),
                    }
                }
                if candidates.is_empty() {
                    return Err(bad(format!(
                        "signed with kid {kid:?}, which is not among trusted_keys"
                    )));
                }
            } else if let Some(j) = header.get("jwk").and_then(Value::as_object) {
                candidates.push(j);
            } else {
                return Err(bad(format!(
                    "signed with key {kid:?} that the card does not embed; pass its JWK in trusted_keys"
                )));
            }
            let msg = format!("{prot}.{payload}");
            for k in candidates {
                let key = key_for(alg, k)?;
                if key.verify(msg.as_bytes(), &sig) {
                    let id = agent_id(&key.id_bytes);
                    if let Some(want) = expected_id {
                        if !want.eq_ignore_ascii_case(&id) {
                            return Err(bad(format!("signed by agent id {id}, expected {want}")));
                        }
                    }
                    return Ok(Verified {
                        card: None,
                        scheme: "jws",
                        agent_id: Some(id),
                        kid: kid.map(str::to_owned),
                        alg: Some(alg.to_owned()),
                    });
                }
            }
            Err(bad(
                "the signature does not match the card (tampered card or wrong key)",
            ))
        })();
        match attempt {
            Ok(v) => return Ok(v),
            Err(e) => reasons.push(format!("signature {i}: {e}")),
        }
    }
    Err(bad(format!(
        "no card signature verifies: {}",
        reasons.join("; ")
    )))
}

fn verify_rvagent(
    card: &Map<String, Value>,
    sig: &Value,
    expected_id: Option<&str>,
    trusted: &[Map<String, Value>],
) -> Result<Verified> {
    let sig = sig
        .as_object()
        .ok_or_else(|| bad("metadata.ruvector.signature is not an object"))?;
    let alg = sig.get("alg").and_then(Value::as_str).unwrap_or("");
    if alg != "ed25519-hex" && alg != "ed25519" {
        return Err(bad(format!(
            "unsupported rvAgent signature algorithm {alg:?}"
        )));
    }
    let pk = sig
        .get("public_key")
        .and_then(Value::as_str)
        .and_then(unhex)
        .filter(|k| k.len() == 32)
        .ok_or_else(|| bad("the rvAgent public_key is not 32 hex-encoded bytes"))?;
    let s = sig
        .get("signature")
        .and_then(Value::as_str)
        .and_then(unhex)
        .filter(|k| k.len() == 64)
        .ok_or_else(|| bad("the rvAgent signature is not 64 hex-encoded bytes"))?;
    let id = agent_id(&pk);
    if let Some(want) = expected_id {
        if !want.eq_ignore_ascii_case(&id) {
            return Err(bad(format!("signed by agent id {id}, expected {want}")));
        }
    }
    if !trusted.is_empty() {
        let ok = trusted.iter().any(|k| {
            k.get("kty").and_then(Value::as_str) == Some("OKP")
                && k.get("x")
                    .and_then(Value::as_str)
                    .and_then(|x| b64u(x).ok())
                    .as_deref()
                    == Some(&pk[..])
        });
        if !ok {
            return Err(bad(
                "the rvAgent card is signed by a key that is not among trusted_keys",
            ));
        }
    }
    // The signed form: the card without the signature, sorted keys, compact.
    let mut unsigned = Value::Object(card.clone());
    if let Some(r) = unsigned
        .pointer_mut("/metadata/ruvector")
        .and_then(Value::as_object_mut)
    {
        r.remove("signature");
    }
    let mut forms = vec![canonical(&unsigned)];
    let empty_ruvector = unsigned
        .pointer("/metadata/ruvector")
        .and_then(Value::as_object)
        .is_some_and(|m| m.is_empty());
    if empty_ruvector {
        if let Some(m) = unsigned
            .pointer_mut("/metadata")
            .and_then(Value::as_object_mut)
        {
            m.remove("ruvector");
        }
        forms.push(canonical(&unsigned));
    }
    let key = UnparsedPublicKey::new(&signature::ED25519, &pk);
    if forms.iter().any(|f| key.verify(f.as_bytes(), &s).is_ok()) {
        Ok(Verified {
            card: None,
            scheme: "rvagent",
            agent_id: Some(id),
            kid: None,
            alg: Some("ed25519".into()),
        })
    } else {
        Err(bad(
            "the rvAgent signature does not match the card (tampered card or wrong key)",
        ))
    }
}

/// Verifies a card; see the module documentation.
pub fn verify(
    card: &Value,
    trusted: &[Map<String, Value>],
    expected_id: Option<&str>,
    allow_unsigned: bool,
) -> Result<Verified> {
    let obj = card
        .as_object()
        .ok_or_else(|| Error::Transport("the agent card is not a JSON object".into()))?;
    match obj.get("signatures") {
        Some(Value::Array(sigs)) if !sigs.is_empty() => {
            return match verify_jws(obj, sigs, trusted, expected_id) {
                Ok(mut v) => {
                    // What the signature covers (empty values are not).
                    v.card = verified_card(card);
                    Ok(v)
                }
                Err(e) => {
                    // A protobuf-based signer (the official SDK) covers only
                    // the 1.0 fields; retry on them and keep only them.
                    let projected = project_v1(card);
                    match projected.as_object() {
                        Some(p) if projected != *card => {
                            match verify_jws(p, sigs, trusted, expected_id) {
                                Ok(mut v) => {
                                    v.card = verified_card(&projected);
                                    Ok(v)
                                }
                                Err(_) => Err(e),
                            }
                        }
                        _ => Err(e),
                    }
                }
            };
        }
        Some(Value::Array(_)) | None => {}
        Some(_) => return Err(bad("\"signatures\" is not a list")),
    }
    if let Some(sig) = card.pointer("/metadata/ruvector/signature") {
        return verify_rvagent(obj, sig, expected_id, trusted);
    }
    if allow_unsigned && expected_id.is_none() && trusted.is_empty() {
        return Ok(Verified {
            card: None,
            scheme: "none",
            agent_id: None,
            kid: None,
            alg: None,
        });
    }
    Err(bad(if allow_unsigned {
        "the agent card is unsigned, but trusted_keys or expected_agent_id were given"
    } else {
        "the agent card is unsigned; pass allow_unsigned=True only for tests or trusted networks"
    }))
}

fn keypair(private_key: &[u8]) -> Result<signature::Ed25519KeyPair> {
    if private_key.len() != 32 {
        return Err(Error::invalid(format!(
            "an Ed25519 private key is 32 bytes (its seed), got {}",
            private_key.len()
        )));
    }
    signature::Ed25519KeyPair::from_seed_unchecked(private_key)
        .map_err(|_| Error::invalid("not a valid Ed25519 private key"))
}

/// The public JWK of an Ed25519 private key (32-byte seed).
pub fn public_jwk(private_key: &[u8], kid: Option<&str>) -> Result<Value> {
    let kp = keypair(private_key)?;
    let mut j = json!({"kty": "OKP", "crv": "Ed25519", "x": URL_SAFE_NO_PAD.encode(kp.public_key().as_ref())});
    if let Some(k) = kid {
        j["kid"] = Value::String(k.to_owned());
    }
    Ok(j)
}

/// Appends an EdDSA JWS signature to `card` (its protected header embeds
/// the public JWK and `kid`, default = the key's agent id).
pub fn sign(card: &Value, private_key: &[u8], kid: Option<&str>) -> Result<Value> {
    let kp = keypair(private_key)?;
    let id = agent_id(kp.public_key().as_ref());
    let kid = kid.map(str::to_owned).unwrap_or(id);
    let mut obj = card
        .as_object()
        .cloned()
        .ok_or_else(|| Error::invalid("the card must be a JSON object"))?;
    let header =
        json!({"alg": "EdDSA", "kid": kid, "typ": "JOSE", "jwk": public_jwk(private_key, None)?});
    let prot = URL_SAFE_NO_PAD.encode(canonical(&header));
    let payload = jws_payload(&obj);
    let sig = kp.sign(format!("{prot}.{payload}").as_bytes());
    let entry = json!({"protected": prot, "signature": URL_SAFE_NO_PAD.encode(sig.as_ref())});
    match obj.get_mut("signatures") {
        Some(Value::Array(a)) => a.push(entry),
        _ => {
            obj.insert("signatures".into(), Value::Array(vec![entry]));
        }
    }
    Ok(Value::Object(obj))
}

fn trusted_list(keys: Option<&Bound<'_, PyAny>>) -> Result<Vec<Map<String, Value>>> {
    let Some(keys) = keys else {
        return Ok(Vec::new());
    };
    match from_py_arg(keys, "trusted_keys")? {
        Value::Array(a) => a
            .into_iter()
            .map(|k| match k {
                Value::Object(m) => Ok(m),
                _ => Err(Error::invalid("each trusted key must be a JWK dict")),
            })
            .collect(),
        Value::Object(m) if m.contains_key("kty") => Ok(vec![m]),
        Value::Object(m) => Ok(m
            .into_iter()
            .filter_map(|(kid, v)| match v {
                Value::Object(mut j) => {
                    j.entry("kid").or_insert(Value::String(kid));
                    Some(j)
                }
                _ => None,
            })
            .collect()),
        _ => Err(Error::invalid(
            "trusted_keys must be a list of JWK dicts or a {kid: JWK} dict",
        )),
    }
}

/// `verify_card(card, *, trusted_keys=None, expected_agent_id=None, allow_unsigned=False)`
/// → `{"card", "scheme", "agent_id", "kid", "alg"}` where `card` is what the
/// signature covers (fields it does not cover are dropped); raises
/// `CardSignatureInvalid`.
#[pyfunction]
#[pyo3(signature = (card, *, trusted_keys=None, expected_agent_id=None, allow_unsigned=false))]
pub fn verify_card<'py>(
    py: Python<'py>,
    card: &Bound<'py, PyAny>,
    trusted_keys: Option<&Bound<'py, PyAny>>,
    expected_agent_id: Option<Bound<'py, PyString>>,
    allow_unsigned: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let expected = opt_text(expected_agent_id.as_ref(), "expected_agent_id")?;
    let v = from_py_arg(card, "card")?;
    let trusted = trusted_list(trusted_keys)?;
    let r = verify(&v, &trusted, expected.as_deref(), allow_unsigned)?;
    let d = PyDict::new(py);
    match &r.card {
        Some(c) => d.set_item("card", to_py(py, c)?)?,
        None => d.set_item("card", card)?,
    }
    d.set_item("scheme", r.scheme)?;
    d.set_item("agent_id", r.agent_id)?;
    d.set_item("kid", r.kid)?;
    d.set_item("alg", r.alg)?;
    Ok(d)
}

/// `sign_card(card, private_key, kid=None)` → a copy of the card with an
/// EdDSA JWS signature appended.
#[pyfunction]
#[pyo3(signature = (card, private_key, kid=None))]
pub fn sign_card(
    py: Python<'_>,
    card: &Bound<'_, PyAny>,
    private_key: &[u8],
    kid: Option<Bound<'_, PyString>>,
) -> PyResult<Py<PyAny>> {
    let kid = opt_text(kid.as_ref(), "kid")?;
    let v = sign(&from_py_arg(card, "card")?, private_key, kid.as_deref())?;
    to_py(py, &v)
}

/// A new random Ed25519 private key (32-byte seed).
#[pyfunction]
pub fn generate_private_key(py: Python<'_>) -> PyResult<Bound<'_, PyBytes>> {
    use ring::rand::SecureRandom;
    let mut seed = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut seed)
        .map_err(|_| Error::A2a("the system random source failed".into()))?;
    Ok(PyBytes::new(py, &seed))
}

/// The public JWK (`{"kty": "OKP", "crv": "Ed25519", "x": ...}`) of a private key.
#[pyfunction]
#[pyo3(signature = (private_key, kid=None))]
pub fn public_key_jwk(
    py: Python<'_>,
    private_key: &[u8],
    kid: Option<Bound<'_, PyString>>,
) -> PyResult<Py<PyAny>> {
    let kid = opt_text(kid.as_ref(), "kid")?;
    to_py(py, &public_jwk(private_key, kid.as_deref())?)
}

/// The agent id (hex SHAKE-256 of the public key, 32 bytes) of a JWK, a raw
/// 32-byte Ed25519 public key, or its hex form.
#[pyfunction]
pub fn agent_id_of(key: &Bound<'_, PyAny>) -> PyResult<String> {
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(agent_id(b.as_bytes()));
    }
    if let Ok(s) = key.cast::<PyString>() {
        let s = text(s, "key")?;
        let raw = unhex(&s).ok_or_else(|| Error::invalid("a public key string must be hex"))?;
        return Ok(agent_id(&raw));
    }
    let v = from_py_arg(key, "key")?;
    let m = v
        .as_object()
        .ok_or_else(|| Error::invalid("key must be a JWK dict, bytes or hex str"))?;
    let alg = match (
        m.get("kty").and_then(Value::as_str),
        m.get("crv").and_then(Value::as_str),
    ) {
        (Some("OKP"), _) => "EdDSA",
        (Some("EC"), Some("P-384")) => "ES384",
        (Some("EC"), _) => "ES256",
        (Some("RSA"), _) => "RS256",
        _ => return Err(Error::invalid("unsupported JWK key type").into()),
    };
    Ok(agent_id(&key_for(alg, m)?.id_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_and_tamper() {
        let seed = [7u8; 32];
        let card = json!({"name": "a", "description": "", "skills": [], "version": "1"});
        let signed = sign(&card, &seed, Some("k1")).unwrap();
        let v = verify(&signed, &[], None, false).unwrap();
        assert_eq!(v.scheme, "jws");
        let id = v.agent_id.unwrap();
        assert!(verify(&signed, &[], Some(&id), false).is_ok());
        assert!(verify(&signed, &[], Some("00"), false).is_err());
        let mut t = signed.clone();
        t["name"] = json!("b");
        assert!(matches!(
            verify(&t, &[], None, false),
            Err(Error::CardSignatureInvalid(_))
        ));
        let mut t = signed.clone();
        t["securitySchemes"] = json!({"x": {}});
        assert!(
            verify(&t, &[], None, true).is_ok(),
            "an empty object is not signed content"
        );
        t["securitySchemes"] = json!({"x": {"y": 1}});
        // not a 1.0 scheme field: unsigned, so dropped from the verified card
        let v = verify(&t, &[], None, true).unwrap();
        assert!(v.card.unwrap().get("securitySchemes").is_none());
        t["securitySchemes"] = json!({"x": {"mtlsSecurityScheme": {"description": "d"}}});
        assert!(verify(&t, &[], None, true).is_err());
        // pinned to another key
        let other = public_jwk(&[8u8; 32], Some("k1")).unwrap();
        let other = other.as_object().unwrap().clone();
        assert!(verify(&signed, &[other], None, false).is_err());
        let mine = public_jwk(&seed, Some("k1"))
            .unwrap()
            .as_object()
            .unwrap()
            .clone();
        assert!(verify(&signed, &[mine], None, false).is_ok());
        assert!(verify(&card, &[], None, false).is_err());
        assert!(verify(&card, &[], None, true).is_ok());
    }

    #[test]
    fn security_requirements_survive_verification() {
        let seed = [5u8; 32];
        let card = json!({"name": "a", "version": "1",
            "securitySchemes": {"bearer": {"httpAuthSecurityScheme": {"scheme": "bearer"}}},
            "securityRequirements": [{"schemes": {"bearer": {"list": []}}}],
            "skills": [{"id": "s", "name": "s",
                "securityRequirements": [{"schemes": {"key": {"list": []}}}]}]});
        let signed = sign(&card, &seed, None).unwrap();
        let v = verify(&signed, &[], None, false).unwrap().card.unwrap();
        assert_eq!(
            v["securityRequirements"],
            json!([{"schemes": {"bearer": {"list": []}}}])
        );
        assert_eq!(
            v["skills"][0]["securityRequirements"],
            json!([{"schemes": {"key": {"list": []}}}])
        );
        assert_eq!(
            v["securitySchemes"]["bearer"]["httpAuthSecurityScheme"]["scheme"],
            "bearer"
        );
        // Scopes are signed content: changing them breaks the signature.
        let mut t = signed.clone();
        t["securityRequirements"] = json!([{"schemes": {"bearer": {"list": ["admin"]}}}]);
        assert!(verify(&t, &[], None, false).is_err());
    }

    #[test]
    fn unsigned_extras_are_dropped_not_trusted() {
        let seed = [9u8; 32];
        let card = json!({"name": "a", "version": "1", "capabilities": {"streaming": true}});
        let mut signed = sign(&card, &seed, None).unwrap();
        signed["url"] = json!("http://evil/");
        signed["capabilities"]["pushNotifications"] = json!(false);
        let v = verify(&signed, &[], None, false).unwrap();
        let c = v.card.expect("projected");
        assert!(c.get("url").is_none());
        assert_eq!(c["name"], "a");
        signed["capabilities"]["pushNotifications"] = json!(true);
        assert!(verify(&signed, &[], None, false).is_err());
    }
}
