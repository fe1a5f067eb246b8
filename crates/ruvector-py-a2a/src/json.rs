//! JSON helpers: serde_json values to and from Python objects, and the
//! RFC 8785 canonical form (JCS) that card signatures are computed over.

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use serde_json::{Map, Number, Value};

use crate::error::{Error, FromBase, Result};

/// Deepest nesting accepted when converting Python objects to JSON.
const MAX_DEPTH: usize = 128;

/// A JSON value as plain Python objects (dict, list, str, int, float, bool, None).
pub fn to_py(py: Python<'_>, v: &Value) -> PyResult<Py<PyAny>> {
    Ok(match v {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i.into_pyobject(py)?.into_any().unbind()
            } else if let Some(u) = n.as_u64() {
                u.into_pyobject(py)?.into_any().unbind()
            } else {
                n.as_f64()
                    .unwrap_or(f64::NAN)
                    .into_pyobject(py)?
                    .into_any()
                    .unbind()
            }
        }
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(a) => {
            let items = a
                .iter()
                .map(|x| to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyList::new(py, items)?.into_any().unbind()
        }
        Value::Object(o) => {
            let d = PyDict::new(py);
            for (k, x) in o {
                d.set_item(k, to_py(py, x)?)?;
            }
            d.into_any().unbind()
        }
    })
}

/// A Python object (dict/list/tuple/str/int/float/bool/None) as JSON.
pub fn from_py(obj: &Bound<'_, PyAny>) -> Result<Value> {
    from_py_arg(obj, "value")
}

/// [`from_py`] of the argument `arg`: errors (including text holding a
/// lone surrogate, which JSON cannot carry) name it.
pub fn from_py_arg(obj: &Bound<'_, PyAny>, arg: &str) -> Result<Value> {
    from_py_depth(obj, 0, arg)
}

fn from_py_depth(obj: &Bound<'_, PyAny>, depth: usize, arg: &str) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(Error::invalid(format!(
            "{arg}: JSON nesting deeper than {MAX_DEPTH}"
        )));
    }
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(b) = obj.cast::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        if let Ok(i) = obj.extract::<i64>() {
            return Ok(Value::from(i));
        }
        if let Ok(u) = obj.extract::<u64>() {
            return Ok(Value::from(u));
        }
        return Err(Error::invalid(format!(
            "{arg}: integer out of the JSON range (i64/u64)"
        )));
    }
    if let Ok(f) = obj.cast::<PyFloat>() {
        let x = f.value();
        return Number::from_f64(x).map(Value::Number).ok_or_else(|| {
            Error::invalid(format!(
                "{arg}: {x} is not a finite number; JSON has no NaN/inf"
            ))
        });
    }
    if let Ok(s) = obj.cast::<PyString>() {
        return crate::util::text(s, arg).map(Value::String);
    }
    if let Ok(d) = obj.cast::<PyDict>() {
        let mut m = Map::new();
        for (k, v) in d.iter() {
            let key = k
                .cast::<PyString>()
                .map_err(|_| Error::invalid(format!("{arg}: JSON object keys must be str")))?;
            let key = crate::util::text(key, &format!("{arg} (a key)"))?;
            m.insert(key, from_py_depth(&v, depth + 1, arg)?);
        }
        return Ok(Value::Object(m));
    }
    if let Ok(l) = obj.cast::<PyList>() {
        return l
            .iter()
            .map(|x| from_py_depth(&x, depth + 1, arg))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array);
    }
    if let Ok(t) = obj.cast::<PyTuple>() {
        return t
            .iter()
            .map(|x| from_py_depth(&x, depth + 1, arg))
            .collect::<Result<Vec<_>>>()
            .map(Value::Array);
    }
    let tn = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(Error::invalid(format!(
        "{arg}: cannot encode a {tn} as JSON; use dict, list, str, int, float, bool or None"
    )))
}

/// Removes empty strings, empty arrays and empty objects, recursively (an
/// object emptied by the removal goes too) — the normalisation A2A applies
/// to a card before canonicalising it for a signature. `None` = removed.
pub fn clean_empty(v: &Value) -> Option<Value> {
    match v {
        Value::String(s) if s.is_empty() => None,
        Value::Array(a) => {
            let out: Vec<Value> = a.iter().filter_map(clean_empty).collect();
            (!out.is_empty()).then_some(Value::Array(out))
        }
        Value::Object(o) => {
            let mut out = Map::new();
            for (k, x) in o {
                if let Some(c) = clean_empty(x) {
                    out.insert(k.clone(), c);
                }
            }
            (!out.is_empty()).then_some(Value::Object(out))
        }
        other => Some(other.clone()),
    }
}

/// RFC 8785 (JSON Canonicalization Scheme) serialization.
pub fn canonical(v: &Value) -> String {
    let mut out = String::new();
    write_canonical(v, &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                out.push_str(&es6_number(n.as_f64().unwrap_or(0.0)));
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            let mut keys: Vec<(&String, Vec<u16>)> =
                o.keys().map(|k| (k, k.encode_utf16().collect())).collect();
            keys.sort_by(|a, b| a.1.cmp(&b.1));
            out.push('{');
            for (i, (k, _)) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_string(k, out);
                out.push(':');
                write_canonical(&o[k.as_str()], out);
            }
            out.push('}');
        }
    }
}

fn write_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// ECMAScript `Number.prototype.toString` for a finite double (RFC 8785 §3.2.2.3).
pub fn es6_number(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    if x < 0.0 {
        return format!("-{}", es6_number(-x));
    }
    // Shortest round-trip digits and exponent: d.ddddde±n
    let e = format!("{x:e}");
    let (mant, exp) = e.split_once('e').unwrap_or((&e, "0"));
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let k = digits.len() as i32;
    let n = exp + 1; // decimal point position
    if k <= n && n <= 21 {
        format!("{digits}{}", "0".repeat((n - k) as usize))
    } else if 0 < n && n <= 21 {
        format!("{}.{}", &digits[..n as usize], &digits[n as usize..])
    } else if -6 < n && n <= 0 {
        format!("0.{}{digits}", "0".repeat((-n) as usize))
    } else {
        let sign = if n - 1 < 0 { '-' } else { '+' };
        let ee = (n - 1).abs();
        if k == 1 {
            format!("{digits}e{sign}{ee}")
        } else {
            format!("{}.{}e{sign}{ee}", &digits[..1], &digits[1..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_follow_es6() {
        for (x, s) in [
            (1.0, "1"),
            (0.5, "0.5"),
            (1e21, "1e+21"),
            (1e20, "100000000000000000000"),
            (1.5e-7, "1.5e-7"),
            (0.000001, "0.000001"),
            (-2.25, "-2.25"),
            (333333333.3333333, "333333333.3333333"),
        ] {
            assert_eq!(es6_number(x), s, "{x}");
        }
    }

    #[test]
    fn canonical_sorts_by_utf16_and_escapes_minimally() {
        // U+1F600 sorts before U+FB01 in UTF-16 (surrogate 0xD83D < 0xFB01)
        // but after it in UTF-8 bytes.
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":"\u00e9\n\u0001","\ufb01":2,"\ud83d\ude00":3}"#)
                .unwrap();
        assert_eq!(
            canonical(&v),
            "{\"a\":\"\u{e9}\\n\\u0001\",\"b\":1,\"\u{1F600}\":3,\"\u{FB01}\":2}"
        );
    }

    #[test]
    fn clean_empty_drops_nested_empties() {
        let v: Value =
            serde_json::from_str(r#"{"a":"","b":[],"c":{"d":""},"e":[{}],"f":0,"g":false}"#)
                .unwrap();
        assert_eq!(canonical(&clean_empty(&v).unwrap()), r#"{"f":0,"g":false}"#);
    }
}
