//! Push notifications of the server: webhook configs per task and their
//! delivery.
//!
//! * Targets are checked when set and again at each delivery: loopback,
//!   private, link-local (cloud metadata), unspecified, multicast and
//!   unique-local addresses are refused unless the server was started with
//!   `allow_private_webhooks` (tests, trusted networks). Redirects are not
//!   followed. A name is resolved and every address checked.
//! * Stored secrets (`token`, `authentication.credentials`) are never
//!   returned by Get/List/Create.
//! * Delivery runs off the request path: one worker per task posts its
//!   events in order, each POST bounded by a timeout, no retries; a full
//!   queue drops events (bounded memory).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde_json::{json, Map, Value};

/// Webhook configs per task.
pub const MAX_CONFIGS_PER_TASK: usize = 8;
/// Events queued per task for delivery.
pub const QUEUE: usize = 256;
/// Timeout of one webhook POST.
pub const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct PushConfig {
    pub id: String,
    pub url: String,
    pub token: Option<String>,
    pub scheme: Option<String>,
    pub credentials: Option<String>,
}

impl PushConfig {
    /// From `TaskPushNotificationConfig` params (`url`, `id`, `token`, `authentication`).
    pub fn from_params(p: &Value) -> std::result::Result<PushConfig, String> {
        let url = p
            .get("url")
            .and_then(Value::as_str)
            .filter(|u| !u.is_empty())
            .ok_or("params.url must be a non-empty string")?;
        if url.len() > 2048 {
            return Err("params.url is longer than 2048 bytes".into());
        }
        let s = |v: Option<&Value>,
                 what: &str,
                 max: usize|
         -> std::result::Result<Option<String>, String> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(x)) if x.len() <= max => Ok(Some(x.clone())),
                _ => Err(format!("{what} must be a string of at most {max} bytes")),
            }
        };
        let auth = p.get("authentication");
        Ok(PushConfig {
            id: s(p.get("id"), "params.id", 256)?
                .filter(|x| !x.is_empty())
                .unwrap_or_else(crate::util::uuid4),
            url: url.to_owned(),
            token: s(p.get("token"), "params.token", 4096)?,
            scheme: s(
                auth.and_then(|a| a.get("scheme")),
                "authentication.scheme",
                64,
            )?,
            credentials: s(
                auth.and_then(|a| a.get("credentials")),
                "authentication.credentials",
                8192,
            )?,
        })
    }

    /// The config as returned to clients: never the token or credentials.
    pub fn public(&self, task_id: &str) -> Value {
        let mut m = Map::new();
        m.insert("taskId".into(), json!(task_id));
        m.insert("id".into(), json!(self.id));
        m.insert("url".into(), json!(self.url));
        if let Some(sc) = &self.scheme {
            m.insert("authentication".into(), json!({"scheme": sc}));
        }
        Value::Object(m)
    }
}

/// True for addresses a webhook must not reach by default.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return private_v4(v4);
            }
            let seg0 = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg0 & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (seg0 & 0xffc0) == 0xfe80 // link local fe80::/10
                || (seg0 & 0xffc0) == 0xfec0 // site local (deprecated)
                || v6 == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) // NAT64 prefix base
        }
    }
}

fn private_v4(v4: Ipv4Addr) -> bool {
    let o = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_unspecified()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        || o[0] == 0
        || (o[0] == 100 && (64..128).contains(&o[1])) // CGNAT 100.64/10
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF 192.0.0/24
        || (o[0] == 198 && (o[1] == 18 || o[1] == 19)) // benchmarking
        || o[0] >= 240 // reserved
}

/// Checks a webhook URL: http(s), and (unless `allow_private`) every
/// address it resolves to is public.
pub async fn check_target(url: &str, allow_private: bool) -> std::result::Result<(), String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("webhook URL {url:?} is invalid: {e}"))?;
    if u.scheme() != "https" && u.scheme() != "http" {
        return Err(format!("webhook URL must be http(s), got {}", u.scheme()));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err("webhook URL must not carry credentials".into());
    }
    if allow_private {
        return Ok(());
    }
    let raw_host = u.host_str().ok_or("webhook URL has no host")?;
    let bare = raw_host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return check_ips(&[ip], url);
    }
    let host = raw_host.to_ascii_lowercase();
    if host == "localhost" || host.ends_with(".localhost") || host.ends_with(".local") {
        return Err(format!(
            "webhook host {host} is local; refused (allow_private_webhooks=True allows it)"
        ));
    }
    let port = u.port_or_known_default().unwrap_or(443);
    let addrs: Vec<IpAddr> = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::lookup_host((host.as_str(), port)),
    )
    .await
    .map_err(|_| format!("resolving webhook host {host} timed out"))?
    .map_err(|e| format!("could not resolve webhook host {host}: {e}"))?
    .map(|a| a.ip())
    .collect();
    if addrs.is_empty() {
        return Err(format!("webhook host {host} has no address"));
    }
    check_ips(&addrs, url)
}

fn check_ips(ips: &[IpAddr], url: &str) -> std::result::Result<(), String> {
    match ips.iter().find(|ip| is_private(**ip)) {
        Some(ip) => Err(format!(
            "webhook {url} reaches {ip}, a private/loopback/link-local address; refused \
             (allow_private_webhooks=True allows it)"
        )),
        None => Ok(()),
    }
}

/// Posts one event to one webhook (errors are dropped: best effort).
pub async fn deliver(
    client: &reqwest::Client,
    cfg: &PushConfig,
    event: &Value,
    allow_private: bool,
) {
    if check_target(&cfg.url, allow_private).await.is_err() {
        return;
    }
    let body = serde_json::to_vec(event).unwrap_or_default();
    let mut req = client
        .post(&cfg.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .timeout(TIMEOUT);
    if let Some(t) = &cfg.token {
        req = req.header("X-A2A-Notification-Token", t);
    }
    if let Some(sc) = &cfg.scheme {
        let v = match &cfg.credentials {
            Some(c) => format!("{sc} {c}"),
            None => sc.clone(),
        };
        req = req.header(reqwest::header::AUTHORIZATION, v);
    }
    if let Ok(resp) = req.send().await {
        // Drain at most a little of the answer; never read a large body.
        drop(resp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_ranges() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn secrets_are_not_public() {
        let c = PushConfig::from_params(&json!({"url": "https://x.example/h", "token": "t",
            "authentication": {"scheme": "Bearer", "credentials": "c"}}))
        .unwrap();
        let p = c.public("task");
        assert!(p.get("token").is_none());
        assert_eq!(p["authentication"], json!({"scheme": "Bearer"}));
    }
}
