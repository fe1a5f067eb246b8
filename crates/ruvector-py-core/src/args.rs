//! Scalar Python arguments checked into ruvector errors (a NumPy integer is
//! accepted wherever a Python int is; bools and floats are not).

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyBool;

use crate::errors::Error;

/// Reads `obj` as an integer in `lo..=hi`, naming `name` and the value in errors.
pub fn int_in_range(obj: &Bound<'_, PyAny>, name: &str, lo: i128, hi: i128) -> PyResult<i128> {
    let type_name = || {
        obj.get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default()
    };
    if obj.is_instance_of::<PyBool>() {
        return Err(Error::invalid(format!("{name} must be an integer, got bool")).into());
    }
    let index = obj.call_method0("__index__").map_err(|e| {
        if e.is_instance_of::<PyTypeError>(obj.py())
            || e.is_instance_of::<pyo3::exceptions::PyAttributeError>(obj.py())
        {
            PyErr::from(Error::invalid(format!(
                "{name} must be an integer, got {}",
                type_name()
            )))
        } else {
            e
        }
    })?;
    let value = if let Ok(v) = index.extract::<i64>() {
        i128::from(v)
    } else if let Ok(v) = index.extract::<u64>() {
        i128::from(v)
    } else {
        return Err(Error::invalid(format!(
            "{name} must be between {lo} and {hi}, got {}",
            index.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
        .into());
    };
    if value < lo || value > hi {
        return Err(
            Error::invalid(format!("{name} must be between {lo} and {hi}, got {value}")).into(),
        );
    }
    Ok(value)
}

/// Reads `obj` as a Python `bool` (not any truthy object: `spill=1` or
/// `spill="no"` is `InvalidArgument` naming `name` and the type).
pub fn bool_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<bool> {
    obj.cast::<PyBool>().map(|b| b.is_true()).map_err(|_| {
        let got = obj
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        Error::invalid(format!("{name} must be a bool, got {got}")).into()
    })
}

/// Reads `obj` as a Python `str` holding valid Unicode, naming `name` in
/// errors: not a `str` is `InvalidArgument` naming the type, and a lone
/// surrogate (such as `"\ud800"`, which has no UTF-8 form) is
/// `InvalidArgument` naming its code point and index instead of Python's
/// `UnicodeEncodeError`.
pub fn str_arg(obj: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    use pyo3::types::{PyString, PyStringMethods};
    let s = obj.cast::<PyString>().map_err(|_| {
        PyErr::from(Error::invalid(format!(
            "{name} must be a str, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        )))
    })?;
    match s.to_cow() {
        Ok(text) => Ok(text.into_owned()),
        Err(e) => {
            let py = obj.py();
            // UnicodeEncodeError.start: the index of the first bad character.
            let at = e
                .value(py)
                .getattr("start")
                .and_then(|v| v.extract::<usize>())
                .ok();
            let code = at
                .and_then(|i| obj.get_item(i).ok())
                .and_then(|c| {
                    py.import("builtins")
                        .and_then(|b| b.getattr("ord"))
                        .and_then(|ord| ord.call1((c,)))
                        .ok()
                })
                .and_then(|v| v.extract::<u32>().ok());
            let what = match code {
                Some(c) => format!("a lone surrogate U+{c:04X}"),
                None => "a lone surrogate".to_string(),
            };
            let place = at.map_or(String::new(), |i| format!(" at index {i}"));
            Err(Error::invalid(format!(
                "{name} holds {what}{place}, which is not valid Unicode text (it has no UTF-8 \
                 form); remove or replace it, e.g. with text.encode('utf-8', 'replace').decode()"
            ))
            .into())
        }
    }
}
