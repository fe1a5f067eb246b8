//! Enforcing the card's security on every JSON-RPC request (the card
//! endpoints stay public).
//!
//! The Python side turns the card's `securitySchemes` and
//! `securityRequirements` into an [`AuthPlan`]: a list of alternatives, each
//! a list of schemes that must all be satisfied. For each request the
//! credential of each scheme is taken from where the scheme says (bearer or
//! basic `Authorization`, an API-key header, query parameter or cookie) and
//! handed to the user's verifier (through the bridge's `check_credential`,
//! which answers an HTTP status and the principal). The first alternative
//! fully verified serves the request; otherwise it is refused before
//! anything else happens: 401 when credentials are missing or invalid (with
//! `WWW-Authenticate` for bearer/basic schemes), 403 when the verifier
//! refused them, 503 when the verifier could not answer.

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::Response;
use base64::Engine;
use pyo3::prelude::*;

use crate::error::{Error, FromBase, Result};
use ruvector_py_core::runtime::InflightGuard;

use super::rpc::refusal;
use super::store::{lock, Shared};

/// Where a scheme's credential is read from.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Source {
    /// `Authorization: Bearer <token>` (HTTP bearer, OAuth 2, OpenID Connect).
    Bearer,
    /// `Authorization: Basic <base64 user:password>`; the credential is
    /// the decoded `user:password`.
    Basic,
    Header(String),
    Query(String),
    Cookie(String),
}

#[derive(Clone, Debug)]
pub(crate) struct SchemeReq {
    pub name: String,
    pub source: Source,
}

/// Alternatives (any one suffices) of schemes (all required).
#[derive(Clone, Debug)]
pub(crate) struct AuthPlan {
    pub alternatives: Vec<Vec<SchemeReq>>,
}

impl AuthPlan {
    /// From `[[(scheme name, kind, parameter)]]` as the Python side builds
    /// it; kind is `bearer`, `basic`, `header`, `query` or `cookie`.
    pub(crate) fn from_spec(spec: Vec<Vec<(String, String, String)>>) -> Result<Self> {
        let mut alternatives = Vec::with_capacity(spec.len());
        for alt in spec {
            let mut reqs = Vec::with_capacity(alt.len());
            for (name, kind, param) in alt {
                let source = match kind.as_str() {
                    "bearer" => Source::Bearer,
                    "basic" => Source::Basic,
                    "header" | "query" | "cookie" if param.is_empty() => {
                        return Err(Error::invalid(format!(
                            "security scheme {name:?}: an API key needs a name"
                        )))
                    }
                    "header" => {
                        axum::http::HeaderName::from_bytes(param.as_bytes()).map_err(|_| {
                            Error::invalid(format!(
                                "security scheme {name:?}: {param:?} is not a valid header name"
                            ))
                        })?;
                        Source::Header(param)
                    }
                    "query" => Source::Query(param),
                    "cookie" => Source::Cookie(param),
                    other => {
                        return Err(Error::invalid(format!(
                            "security scheme {name:?}: unknown credential source {other:?}"
                        )))
                    }
                };
                reqs.push(SchemeReq { name, source });
            }
            alternatives.push(reqs);
        }
        if alternatives.is_empty() {
            return Err(Error::invalid(
                "an auth plan needs at least one alternative",
            ));
        }
        Ok(AuthPlan { alternatives })
    }
}

/// Who made the request: the scheme that admitted it and the verifier's
/// principal. `None` when the card declares no security.
pub(super) type Principal = Option<Arc<Authenticated>>;

pub(super) struct Authenticated {
    pub scheme: String,
    pub principal: Py<PyAny>,
}

#[derive(Debug, PartialEq)]
enum Found {
    Missing,
    Malformed,
    Present(String),
}

fn ascii_token(v: &HeaderValue) -> Option<&str> {
    v.to_str().ok().map(str::trim)
}

/// The credential after `scheme ` in an `Authorization` header.
fn authorization(headers: &HeaderMap, scheme: &str) -> Found {
    let mut found = Found::Missing;
    for v in headers.get_all(header::AUTHORIZATION) {
        let Some(s) = ascii_token(v) else {
            found = Found::Malformed;
            continue;
        };
        let (name, rest) = s.split_once(' ').unwrap_or((s, ""));
        if name.eq_ignore_ascii_case(scheme) {
            let token = rest.trim();
            return if token.is_empty() {
                Found::Malformed
            } else {
                Found::Present(token.to_owned())
            };
        }
    }
    found
}

fn unhex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// `application/x-www-form-urlencoded` decoding; `None` if not UTF-8.
fn form_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (unhex(b[i + 1]), unhex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn query_param(uri: &Uri, name: &str) -> Found {
    let Some(q) = uri.query() else {
        return Found::Missing;
    };
    for pair in q.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if form_decode(k).as_deref() == Some(name) {
            return match form_decode(v) {
                Some(v) if !v.is_empty() => Found::Present(v),
                _ => Found::Malformed,
            };
        }
    }
    Found::Missing
}

fn cookie(headers: &HeaderMap, name: &str) -> Found {
    for v in headers.get_all(header::COOKIE) {
        let Some(s) = ascii_token(v) else { continue };
        for c in s.split(';') {
            let (k, v) = c.trim().split_once('=').unwrap_or((c.trim(), ""));
            if k == name {
                let v = v.trim().trim_matches('"');
                return if v.is_empty() {
                    Found::Malformed
                } else {
                    Found::Present(v.to_owned())
                };
            }
        }
    }
    Found::Missing
}

fn credential(req: &SchemeReq, headers: &HeaderMap, uri: &Uri) -> Found {
    match &req.source {
        Source::Bearer => authorization(headers, "Bearer"),
        Source::Basic => match authorization(headers, "Basic") {
            Found::Present(b64) => base64::engine::general_purpose::STANDARD
                .decode(b64.as_bytes())
                .ok()
                .and_then(|raw| String::from_utf8(raw).ok())
                .filter(|s| s.contains(':'))
                .map_or(Found::Malformed, Found::Present),
            other => other,
        },
        Source::Header(name) => match headers.get(name.as_str()) {
            None => Found::Missing,
            Some(v) => match ascii_token(v) {
                Some(s) if !s.is_empty() => Found::Present(s.to_owned()),
                _ => Found::Malformed,
            },
        },
        Source::Query(name) => query_param(uri, name),
        Source::Cookie(name) => cookie(headers, name),
    }
}

/// The verifier's verdict on one credential.
enum Verdict {
    Accepted(Py<PyAny>),
    Status(StatusCode),
}

/// Asks the Python side (`check_credential(scheme, credential)` →
/// `(status, principal)`) off the async runtime: a sync verifier runs on
/// this blocking thread, an async one on the server's event loop.
async fn verify(s: &Arc<Shared>, scheme: &str, cred: String) -> Verdict {
    let Some(bridge) = lock(&s.bridge).clone() else {
        return Verdict::Status(StatusCode::SERVICE_UNAVAILABLE);
    };
    let scheme = scheme.to_owned();
    let r = tokio::task::spawn_blocking(move || {
        let Some(_g) = InflightGuard::enter() else {
            return Verdict::Status(StatusCode::SERVICE_UNAVAILABLE);
        };
        let Some(check) = &bridge.check_credential else {
            return Verdict::Status(StatusCode::SERVICE_UNAVAILABLE);
        };
        Python::attach(|py| {
            let out = check
                .call1(py, (scheme, cred))
                .and_then(|o| o.extract::<(u16, Py<PyAny>)>(py));
            match out {
                Ok((200, p)) => Verdict::Accepted(p),
                Ok((code, _)) => Verdict::Status(
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                ),
                Err(_) => Verdict::Status(StatusCode::INTERNAL_SERVER_ERROR),
            }
        })
    })
    .await;
    r.unwrap_or(Verdict::Status(StatusCode::INTERNAL_SERVER_ERROR))
}

fn challenge(plan: &AuthPlan, invalid: bool) -> Vec<HeaderValue> {
    let mut out = Vec::new();
    let err = if invalid {
        ", error=\"invalid_token\""
    } else {
        ""
    };
    let mut bearer = false;
    let mut basic = false;
    for r in plan.alternatives.iter().flatten() {
        match r.source {
            Source::Bearer if !bearer => {
                bearer = true;
                out.push(format!("Bearer realm=\"a2a\"{err}"));
            }
            Source::Basic if !basic => {
                basic = true;
                out.push("Basic realm=\"a2a\", charset=\"UTF-8\"".to_owned());
            }
            _ => {}
        }
    }
    out.into_iter()
        .filter_map(|s| HeaderValue::from_str(&s).ok())
        .collect()
}

/// The request's principal, or the refusal to send instead of serving it.
pub(super) async fn authorize(
    s: &Arc<Shared>,
    headers: &HeaderMap,
    uri: &Uri,
) -> std::result::Result<Principal, Response> {
    let Some(plan) = &s.auth else {
        return Ok(None);
    };
    let mut verdicts: Vec<StatusCode> = Vec::new();
    let mut invalid = false;
    for alt in &plan.alternatives {
        if alt.is_empty() {
            // An empty requirement: anonymous access is allowed.
            return Ok(None);
        }
        let mut creds = Vec::with_capacity(alt.len());
        for r in alt {
            match credential(r, headers, uri) {
                Found::Present(c) => creds.push(c),
                Found::Malformed => {
                    invalid = true;
                    break;
                }
                Found::Missing => break,
            }
        }
        if creds.len() < alt.len() {
            continue;
        }
        let mut first: Option<Py<PyAny>> = None;
        let mut ok = true;
        for (r, c) in alt.iter().zip(creds) {
            match verify(s, &r.name, c).await {
                Verdict::Accepted(p) => {
                    first.get_or_insert(p);
                }
                Verdict::Status(code) => {
                    verdicts.push(code);
                    ok = false;
                    break;
                }
            }
        }
        if ok {
            if let Some(p) = first {
                return Ok(Some(Arc::new(Authenticated {
                    scheme: alt[0].name.clone(),
                    principal: p,
                })));
            }
        }
    }
    let worst = |c: StatusCode| verdicts.contains(&c);
    let (status, message) = if worst(StatusCode::FORBIDDEN) {
        (
            StatusCode::FORBIDDEN,
            "forbidden: the credentials were refused",
        )
    } else if worst(StatusCode::SERVICE_UNAVAILABLE) || worst(StatusCode::INTERNAL_SERVER_ERROR) {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the credentials could not be verified now",
        )
    } else {
        invalid = invalid || worst(StatusCode::UNAUTHORIZED);
        (
            StatusCode::UNAUTHORIZED,
            if invalid {
                "unauthorized: invalid credentials"
            } else {
                "unauthorized: this agent requires credentials (see the securitySchemes of its card)"
            },
        )
    };
    let mut resp = refusal(status, message.to_owned(), false);
    if status == StatusCode::UNAUTHORIZED {
        for v in challenge(plan, invalid) {
            resp.headers_mut().append(header::WWW_AUTHENTICATE, v);
        }
    }
    Err(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hm(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn req(source: Source) -> SchemeReq {
        SchemeReq {
            name: "s".into(),
            source,
        }
    }

    #[test]
    fn credentials_are_found_where_the_scheme_says() {
        let uri: Uri = "/?a=1&api%20key=k%2B1+2".parse().unwrap();
        let h = hm(&[
            ("authorization", "bearer  tok "),
            ("x-key", "abc"),
            ("cookie", "a=b; sid=\"xyz\""),
        ]);
        assert_eq!(
            credential(&req(Source::Bearer), &h, &uri),
            Found::Present("tok".into())
        );
        assert_eq!(credential(&req(Source::Basic), &h, &uri), Found::Missing);
        assert_eq!(
            credential(&req(Source::Header("X-Key".into())), &h, &uri),
            Found::Present("abc".into())
        );
        assert_eq!(
            credential(&req(Source::Query("api key".into())), &h, &uri),
            Found::Present("k+1 2".into())
        );
        assert_eq!(
            credential(&req(Source::Cookie("sid".into())), &h, &uri),
            Found::Present("xyz".into())
        );
        let h = hm(&[("authorization", "Bearer"), ("authorization", "Basic dTpw")]);
        assert_eq!(credential(&req(Source::Bearer), &h, &uri), Found::Malformed);
        assert_eq!(
            credential(&req(Source::Basic), &h, &uri),
            Found::Present("u:p".into())
        );
        let h = hm(&[("authorization", "Basic !!!")]);
        assert_eq!(credential(&req(Source::Basic), &h, &uri), Found::Malformed);
    }

    #[test]
    fn form_decoding_never_panics() {
        for s in ["%", "%4", "%zz", "a%41", "%e9", "+%2"] {
            let _ = form_decode(s);
        }
        assert_eq!(form_decode("a%41").as_deref(), Some("aA"));
        assert_eq!(form_decode("%e9"), None);
    }

    #[test]
    fn plans_are_checked() {
        assert!(AuthPlan::from_spec(vec![]).is_err());
        assert!(AuthPlan::from_spec(vec![vec![("k".into(), "header".into(), "".into())]]).is_err());
        assert!(AuthPlan::from_spec(vec![vec![("k".into(), "magic".into(), "".into())]]).is_err());
        let p = AuthPlan::from_spec(vec![vec![("b".into(), "bearer".into(), "".into())]]).unwrap();
        assert_eq!(challenge(&p, false).len(), 1);
    }
}
