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
