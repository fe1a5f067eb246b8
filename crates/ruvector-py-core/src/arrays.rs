//! NumPy input views. Arrays that are already float32 (native byte order),
//! C-contiguous and aligned are borrowed without a copy. float16 and
//! float64 input — an ndarray, or any object with the buffer protocol such
//! as a `memoryview` or `array.array` — is converted to float32 once (a
//! copy; a float64 value beyond the float32 range is refused, naming its
//! position). A float32 array that would need a copy to be read (strided,
//! misaligned) is refused with the one-line fix, so a silent copy never
//! hides in a hot loop. Plain Python sequences are accepted for one-shot
//! calls and converted once (documented as the slower path). Other dtypes
//! (integers, bools, strings, objects) are refused for arrays and buffers.

use std::path::PathBuf;

use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
    PyUntypedArray, PyUntypedArrayMethods,
};
use pyo3::exceptions::{PyTypeError, PyUnicodeError};
use pyo3::prelude::*;
use pyo3::types::{PyAnyMethods, PyString, PyStringMethods};

use crate::errors::Error;

/// A NumPy-style shape: `(3,)`, `(2, 3)`.
pub fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `what[i]` / `what[i, j]` for flat position `flat` of an array of `shape`.
fn place_text(what: &str, shape: &[usize], flat: usize) -> String {
    let mut rest = flat;
    let mut index = vec![0usize; shape.len()];
    for (slot, &d) in index.iter_mut().zip(shape).rev() {
        let d = d.max(1);
        *slot = rest % d;
        rest /= d;
    }
    let inner: Vec<String> = index.iter().map(usize::to_string).collect();
    format!("{what}[{}]", inner.join(", "))
}

/// Returns `obj` as an ndarray: itself if it is one; a zero-copy view of a
/// buffer (`memoryview`, `array.array`, ...), keeping its dtype; for other
/// sequences, `numpy.asarray(obj)` when that gives floats (converted like a
/// float64 array), else `numpy.asarray(obj, dtype=float32)` (ints, bools).
fn to_ndarray<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    if let Ok(arr) = obj.cast::<PyUntypedArray>() {
        return Ok(arr.clone());
    }
    let py = obj.py();
    let np = py.import("numpy")?;
    let cannot = |e: PyErr| {
        PyErr::from(Error::invalid(format!(
            "{what} must be a float32 NumPy array or a sequence of numbers, \
             got {} that NumPy cannot convert ({})",
            type_name(obj),
            e.value(py)
        )))
    };
    // Buffers keep their own dtype, so they are treated like arrays (the
    // same conversions, the same refusals). `bytes` and `str` also offer a
    // buffer or are sequences, but of characters: refused below by dtype.
    let is_buffer = py
        .import("builtins")?
        .getattr("memoryview")?
        .call1((obj,))
        .is_ok();
    let converted = np.call_method1("asarray", (obj,)).map_err(cannot)?;
    let arr = converted.cast_into::<PyUntypedArray>()?;
    if is_buffer || arr.dtype().kind() == b'f' {
        return Ok(arr);
    }
    // A sequence of ints or bools: converted to float32 as before.
    let converted = np
        .call_method1("asarray", (obj, np.getattr("float32")?))
        .map_err(cannot)?;
    Ok(converted.cast_into::<PyUntypedArray>()?)
}

/// `arr` as a native float32 array: itself when it already is one, else a
/// new converted array (float16 and float64 only, in any byte order).
fn to_float32<'py>(
    arr: Bound<'py, PyUntypedArray>,
    what: &str,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let py = arr.py();
    let dtype = arr.dtype();
    if dtype.is_equiv_to(&numpy::dtype::<f32>(py)) {
        return Ok(arr);
    }
    let np = py.import("numpy")?;
    let (kind, size) = (dtype.kind(), dtype.itemsize());
    if kind != b'f' || !matches!(size, 2 | 4 | 8) {
        return Err(Error::invalid(format!(
            "{what} must have dtype float32, got {} (float16 and float64 are converted too); \
             convert it with {what}.astype(numpy.float32)",
            dtype.str()?.to_string_lossy()
        ))
        .into());
    }
    if size != 8 {
        // float16, or float32 in the other byte order: exact conversions.
        let out = arr.call_method1("astype", (np.getattr("float32")?,))?;
        return Ok(out.cast_into::<PyUntypedArray>()?);
    }
    let native = if dtype.is_equiv_to(&numpy::dtype::<f64>(py)) {
        arr
    } else {
        arr.call_method1("astype", (np.getattr("float64")?,))?
            .cast_into::<PyUntypedArray>()?
    };
    let typed = native.cast::<PyArrayDyn<f64>>()?.readonly();
    let view = typed.as_array();
    let shape = view.shape().to_vec();
    // One pass over the values, GIL released (a large array takes a while).
    // Logical (C) order, whatever the strides: the copy is contiguous.
    let narrow = |values: &mut dyn Iterator<Item = f64>| -> Result<Vec<f32>, (usize, f64)> {
        let mut data = Vec::with_capacity(view.len());
        for (flat, x) in values.enumerate() {
            let y = x as f32;
            if x.is_finite() && !y.is_finite() {
                return Err((flat, x));
            }
            data.push(y);
        }
        Ok(data)
    };
    let converted = py.detach(|| match view.as_slice() {
        Some(contiguous) => narrow(&mut contiguous.iter().copied()),
        None => narrow(&mut view.iter().copied()),
    });
    let data = converted.map_err(|(flat, x)| {
        Error::invalid(format!(
            "{what} holds {x:e} at {}, beyond the float32 range (about 3.4e38)",
            place_text(what, &shape, flat)
        ))
    })?;
    let out = PyArray1::from_vec(py, data).reshape(shape)?;
    Ok(out.into_any().cast_into::<PyUntypedArray>()?)
}

fn check_layout(
    arr: &Bound<'_, PyUntypedArray>,
    what: &str,
    ndim: usize,
    shape_hint: &str,
) -> PyResult<()> {
    if arr.ndim() != ndim {
        return Err(Error::invalid(format!(
            "{what} must be a {ndim}-D array of shape {shape_hint}, got shape {}",
            shape_text(arr.shape())
        ))
        .into());
    }
    if !arr.is_c_contiguous() {
        return Err(Error::invalid(format!(
            "{what} must be C-contiguous, got a strided view; pass numpy.ascontiguousarray({what})"
        ))
        .into());
    }
    let aligned: bool = arr.getattr("flags")?.getattr("aligned")?.extract()?;
    if !aligned {
        return Err(Error::invalid(format!(
            "{what} must be aligned to 4 bytes, got a misaligned buffer; pass {what}.copy()"
        ))
        .into());
    }
    Ok(())
}

/// Borrows a `(n, dim)` float32 matrix without copying (float16 / float64
/// input is converted once, see the module docs).
pub fn matrix_f32<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
) -> PyResult<PyReadonlyArray2<'py, f32>> {
    let arr = to_float32(to_ndarray(obj, what)?, what)?;
    check_layout(&arr, what, 2, "(n, dim)")?;
    let typed = arr.cast_into::<numpy::PyArray2<f32>>()?;
    Ok(typed
        .try_readonly()
        .map_err(|e| Error::invalid(format!("{what}: {e}")))?)
}

/// Borrows a `(dim,)` float32 vector without copying (float16 / float64
/// input is converted once). `batch_method` names the method that takes
/// several at once, for the hint on a `(1, dim)` input.
pub fn vector_f32<'py>(
    obj: &Bound<'py, PyAny>,
    what: &str,
    batch_method: &str,
) -> PyResult<PyReadonlyArray1<'py, f32>> {
    let arr = to_ndarray(obj, what)?;
    if arr.ndim() == 2 && arr.shape().first() == Some(&1) {
        return Err(Error::invalid(format!(
            "{what} must be a 1-D array of shape (dim,), got shape {}; \
             pass {what}[0], or use {batch_method} for several at once",
            shape_text(arr.shape())
        ))
        .into());
    }
    let arr = to_float32(arr, what)?;
    check_layout(&arr, what, 1, "(dim,)")?;
    let typed = arr.cast_into::<PyArray1<f32>>()?;
    Ok(typed
        .try_readonly()
        .map_err(|e| Error::invalid(format!("{what}: {e}")))?)
}

/// A `str` argument as Rust text. Not a `str`: `TypeError` (as for any
/// typed parameter). A `str` that is not valid Unicode (a lone surrogate
/// such as `"\ud800"`): `InvalidArgument` naming `what`.
pub fn text_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<String> {
    let s = obj.cast::<PyString>().map_err(|_| {
        PyTypeError::new_err(format!("{what} must be a str, got {}", type_name(obj)))
    })?;
    s.to_cow().map(|c| c.into_owned()).map_err(|_| {
        Error::invalid(format!(
            "{what} must be valid Unicode text, got {} (it holds a lone surrogate)",
            s.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
        .into()
    })
}

/// A path argument: `str` or `os.PathLike[str]`. Anything else (`bytes`,
/// a number): `TypeError`. A path that the file system encoding cannot
/// represent (a lone surrogate): `InvalidArgument` naming `what`.
pub fn path_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<PathBuf> {
    let py = obj.py();
    let fspath = if obj.is_instance_of::<PyString>() {
        obj.clone()
    } else {
        let not_a_path = || {
            PyTypeError::new_err(format!(
                "{what} must be a str or an os.PathLike[str], got {}",
                type_name(obj)
            ))
        };
        if obj.hasattr("__fspath__").unwrap_or(false) {
            py.import("os")?
                .call_method1("fspath", (obj,))
                .map_err(|e| {
                    if e.is_instance_of::<PyTypeError>(py) {
                        not_a_path()
                    } else {
                        e
                    }
                })?
        } else {
            return Err(not_a_path());
        }
    };
    if !fspath.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{what} must be a str or an os.PathLike[str], got an os.PathLike giving {}",
            type_name(&fspath)
        )));
    }
    fspath.extract::<PathBuf>().map_err(|e| {
        if e.is_instance_of::<PyUnicodeError>(py) {
            Error::invalid(format!(
                "{what} cannot be represented in the file system encoding: {} (a lone surrogate?)",
                fspath.repr().map(|r| r.to_string()).unwrap_or_default()
            ))
            .into()
        } else {
            e
        }
    })
}

/// Reads ids as u64: an integer ndarray, or any sequence of Python / NumPy
/// integers, holding exactly `n` non-negative values. Floats and bools are
/// refused rather than truncated; values above 2**64-1 are named.
pub fn ids_u64(obj: &Bound<'_, PyAny>, n: usize, what: &str) -> PyResult<Vec<u64>> {
    let py = obj.py();
    let np = py.import("numpy")?;
    let arr = match obj.cast::<PyUntypedArray>() {
        Ok(arr) => arr.clone(),
        Err(_) => np
            .call_method1("asarray", (obj,))
            .map_err(|e| {
                PyErr::from(Error::invalid(format!(
                    "{what} must be a sequence of integers ({})",
                    e.value(py)
                )))
            })?
            .cast_into::<PyUntypedArray>()?,
    };
    if arr.ndim() == 1 && arr.shape()[0] == 0 && n == 0 {
        return Ok(Vec::new());
    }
    let kind = arr.dtype().kind();
    let from_sequence = !obj.is_instance_of::<PyUntypedArray>();
    if from_sequence && (kind == b'f' || kind == b'O') && arr.ndim() == 1 && arr.shape()[0] == n {
        // Python ints beyond int64 make NumPy pick float64 or object: read
        // them one by one so the message names the value, not a dtype.
        let items: Vec<Bound<'_, PyAny>> = obj.try_iter()?.collect::<PyResult<_>>()?;
        if items
            .iter()
            .all(|i| i.is_exact_instance_of::<pyo3::types::PyInt>())
        {
            return items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    let v = crate::args::int_in_range(
                        item,
                        &format!("{what}[{i}]"),
                        0,
                        u64::MAX as i128,
                    )?;
                    Ok(v as u64)
                })
                .collect();
        }
    }
    let kind = arr.dtype().kind();
    if kind != b'i' && kind != b'u' {
        return Err(Error::invalid(format!(
            "{what} must hold integers, got dtype {}",
            arr.dtype().str()?.to_string_lossy()
        ))
        .into());
    }
    if arr.ndim() != 1 || arr.shape()[0] != n {
        return Err(Error::invalid(format!(
            "{what} must be a 1-D sequence of {n} ids (one per vector), got shape {}",
            shape_text(arr.shape())
        ))
        .into());
    }
    if kind == b'i' {
        let signed = np
            .call_method1("ascontiguousarray", (arr, np.getattr("int64")?))?
            .cast_into::<PyArrayDyn<i64>>()?;
        let ro = signed.readonly();
        let values = ro
            .as_slice()
            .map_err(|e| Error::invalid(format!("{what}: {e}")))?;
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                u64::try_from(v).map_err(|_| {
                    Error::invalid(format!("{what}[{i}] = {v} is negative: ids must be >= 0"))
                        .into()
                })
            })
            .collect()
    } else {
        let unsigned = np
            .call_method1("ascontiguousarray", (arr, np.getattr("uint64")?))?
            .cast_into::<PyArrayDyn<u64>>()?;
        let ro = unsigned.readonly();
        Ok(ro
            .as_slice()
            .map_err(|e| Error::invalid(format!("{what}: {e}")))?
            .to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::shape_text;

    #[test]
    fn shapes_print_like_numpy() {
        assert_eq!(shape_text(&[3]), "(3,)");
        assert_eq!(shape_text(&[2, 5]), "(2, 5)");
        assert_eq!(shape_text(&[]), "()");
    }
}

/// Keeps a shared float buffer alive for as long as NumPy views of it exist.
#[pyclass(frozen, module = "ruvector_common", name = "_SharedBuffer")]
pub struct SharedBuffer {
    data: SharedF32,
}

/// A float buffer shared with NumPy views: an owned `Vec<f32>` or a
/// read-only memory map (any owner whose slice never changes while shared).
pub type SharedF32 = std::sync::Arc<dyn AsRef<[f32]> + Send + Sync>;

/// A read-only NumPy view of `data[offset .. offset + rows*cols]` shaped
/// `(rows, cols)`, or `(cols,)` when `rows` is `None`. No copy: the view
/// holds a reference to the buffer, which therefore never moves or changes
/// under it (writers copy a shared buffer first, see `Arc::make_mut`).
pub fn readonly_view<'py>(
    py: Python<'py>,
    data: SharedF32,
    offset: usize,
    rows: Option<usize>,
    cols: usize,
) -> PyResult<Bound<'py, PyAny>> {
    let len = rows.unwrap_or(1) * cols;
    assert!(offset + len <= (*data).as_ref().len(), "view out of bounds");
    let owner = Bound::new(py, SharedBuffer { data })?;
    let slice: &[f32] = &(*owner.get().data).as_ref()[offset..offset + len];
    let view = match rows {
        Some(r) => {
            let a = numpy::ndarray::ArrayView2::from_shape((r, cols), slice)
                .map_err(|e| Error::Index(format!("view shape: {e}")))?;
            // SAFETY: the array keeps `owner` alive, and the buffer it owns is
            // never mutated while shared (copy-on-write in every writer).
            unsafe { numpy::PyArray2::borrow_from_array(&a, owner.clone().into_any()) }.into_any()
        }
        None => {
            let a = numpy::ndarray::ArrayView1::from(slice);
            // SAFETY: as above.
            unsafe { numpy::PyArray1::borrow_from_array(&a, owner.clone().into_any()) }.into_any()
        }
    };
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("write", false)?;
    view.call_method("setflags", (), Some(&kwargs))?;
    Ok(view)
}

/// `(ids, scores)` of a batch search as NumPy arrays of shape `(nq, k)`
/// (int64 and float32), moving the buffers without a copy.
pub fn batch_to_numpy(
    py: Python<'_>,
    nq: usize,
    k: usize,
    ids: Vec<i64>,
    scores: Vec<f32>,
) -> PyResult<Py<PyAny>> {
    let ids = PyArray1::from_vec(py, ids).reshape([nq, k])?;
    let scores = PyArray1::from_vec(py, scores).reshape([nq, k])?;
    Ok(
        pyo3::types::PyTuple::new(py, [ids.into_any(), scores.into_any()])?
            .into_any()
            .unbind(),
    )
}

/// The Python type name of `obj`, for messages ("got str").
pub fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// A new float32 NumPy vector owning `data` (no copy).
pub fn f32_vector(py: Python<'_>, data: Vec<f32>) -> Py<PyAny> {
    PyArray1::from_vec(py, data).into_any().unbind()
}

/// A new `(len / cols, cols)` float32 NumPy matrix owning `data` (no copy).
pub fn f32_matrix(py: Python<'_>, data: Vec<f32>, cols: usize) -> PyResult<Py<PyAny>> {
    let rows = data.len().checked_div(cols).unwrap_or(0);
    Ok(PyArray1::from_vec(py, data)
        .reshape([rows, cols])?
        .into_any()
        .unbind())
}

/// Loads NumPy's C API now, for wheels that return arrays: the `numpy` crate
/// otherwise loads it on the first array it makes and panics if that import
/// fails (for example when a Ctrl-C pending since a long call interrupts
/// the import), which reaches the caller as a `PanicException` and loses
/// the call's result. Called from the wheel's module init, a failure is an
/// `ImportError` of the wheel instead.
pub fn init_numpy(py: Python<'_>) -> PyResult<()> {
    py.import("numpy")?;
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        PyArray1::<f32>::zeros(py, 0, false).len()
    }));
    match loaded {
        Ok(_) => Ok(()),
        Err(_) => Err(pyo3::exceptions::PyImportError::new_err(
            "NumPy is installed but its C API could not be loaded",
        )),
    }
}
