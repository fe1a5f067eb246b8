//! The Python class `ImageEmbedder`: NumPy images in, 576-d features out.
//!
//! Images are `(H, W, 3)` uint8 arrays (RGB, channels last). A C-contiguous
//! array is read in place with the GIL released; any other view (slices,
//! negative strides, transposes) is copied once into row-major order first.

use std::borrow::Cow;
use std::sync::Arc;

use numpy::ndarray::{ArrayView3, Axis, Ix3, Ix4};
use numpy::{
    PyArray1, PyArrayDescrMethods, PyArrayDyn, PyArrayMethods, PyReadonlyArrayDyn, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString, PyType};
use rayon::prelude::*;

use ruvector_py_core::arrays::{f32_matrix, f32_vector, shape_text, type_name};
use ruvector_py_core::interrupt::{run_interruptible, Cancel};
use ruvector_py_core::{parallel, runtime};

use ruvector_py_core::errors::Error as BaseError;

use crate::error::{Error, FromBase, Result};
use crate::py_modules::{REDUCE_IMAGE_EMBEDDER, RESOLVE_IMAGE_WEIGHTS};

use crate::files::ModelDir;
use crate::image::{Rgb8, CROP, MAX_SIDE};
use crate::model::{check_finite, guarded};

/// Largest image weights file read (torchvision's mobilenet_v3_small
/// state_dict is about 10 MB).
const MAX_WEIGHTS_BYTES: u64 = 256 << 20;
use crate::mobilenet::{MobileNetV3Small, Scratch, FEATURE_DIM};
use crate::safetensors::SafeTensors;

/// A loaded image network and the batch driver.
pub struct ImageModel {
    net: MobileNetV3Small,
    normalize: bool,
}

impl ImageModel {
    /// The features of `img` into `out`; `what` names the image in errors.
    fn embed_into(
        &self,
        img: &Rgb8<'_>,
        s: &mut Scratch,
        out: &mut [f32],
        what: &dyn Fn() -> String,
    ) -> Result<()> {
        let x = img.preprocess();
        self.net.features(&x, s, out);
        if self.normalize {
            let norm = out
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                .sqrt();
            if norm > 0.0 {
                out.iter_mut()
                    .for_each(|v| *v = (f64::from(*v) / norm) as f32);
            }
        }
        // One pass over the result: a broken model raises instead of
        // returning NaN.
        check_finite(out, what)
    }

    /// One image on the calling thread.
    pub fn embed_one(&self, img: &Rgb8<'_>) -> Result<Vec<f32>> {
        guarded(|| {
            let mut out = vec![0.0; FEATURE_DIM];
            self.embed_into(img, &mut Scratch::default(), &mut out, &|| {
                "the image".to_string()
            })?;
            Ok(out)
        })
    }

    /// Every image on the wheel's pool, one image per task:
    /// `(images.len(), 576)` row-major, equal to the one-by-one results.
    /// `cancel` is checked before each image.
    pub fn embed_many(&self, images: &[Rgb8<'_>], cancel: &Cancel) -> Result<Vec<f32>> {
        guarded(|| {
            let mut out = vec![0.0f32; images.len() * FEATURE_DIM];
            if images.is_empty() {
                return Ok(out);
            }
            parallel::pool()?.install(|| {
                out.par_chunks_mut(FEATURE_DIM)
                    .zip(images.par_iter())
                    .enumerate()
                    .try_for_each_init(Scratch::default, |s, (i, (row, img))| {
                        cancel.check()?;
                        self.embed_into(img, s, row, &|| format!("images[{i}]"))
                    })
            })?;
            Ok(out)
        })
    }
}

/// Checks the `(H, W, 3)` shape of one image (`shape` without a batch axis).
fn check_image_shape(shape: &[usize], what: &str) -> Result<()> {
    let got = shape_text(shape);
    let expected = "expected shape (H, W, 3): RGB, channels last";
    if shape.len() != 3 {
        let hint = match shape.len() {
            2 => "; a grayscale image? repeat it: numpy.stack([img] * 3, axis=-1)",
            4 => "; for a batch of images use embed_images",
            _ => "",
        };
        return Err(Error::invalid(format!(
            "{what} must be a 3-D array, {expected}, got a {}-D array of shape {got}{hint}",
            shape.len()
        )));
    }
    if shape[2] != 3 {
        let hint = match (shape[0], shape[2]) {
            (3, _) => "; channels first? pass img.transpose(1, 2, 0)",
            (_, 4) => "; RGBA? drop the alpha channel: img[..., :3]",
            (_, 1) => "; one channel? repeat it: numpy.repeat(img, 3, axis=-1)",
            _ => "",
        };
        return Err(Error::invalid(format!(
            "{what} must have 3 channels, {expected}, got {} channels in shape {got}{hint}",
            shape[2]
        )));
    }
    if shape[0] == 0 || shape[1] == 0 {
        return Err(Error::invalid(format!(
            "{what} must have at least 1 pixel per side, {expected} with H, W >= 1, got shape {got}"
        )));
    }
    if shape[0] > MAX_SIDE || shape[1] > MAX_SIDE {
        return Err(Error::invalid(format!(
            "{what} sides must be at most {MAX_SIDE} pixels, got shape {got}; downscale it first"
        )));
    }
    Ok(())
}

/// `obj` as an ndarray of dtype uint8 (anything else that NumPy converts,
/// such as a PIL image, goes through `numpy.asarray`).
fn u8_array<'py>(obj: &Bound<'py, PyAny>, what: &str) -> PyResult<PyReadonlyArrayDyn<'py, u8>> {
    let py = obj.py();
    let arr = match obj.cast::<PyUntypedArray>() {
        Ok(a) => a.clone(),
        Err(_) => {
            if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
                return Err(Error::invalid(format!(
                    "{what} must be a NumPy uint8 array of shape (H, W, 3), got {}",
                    type_name(obj)
                ))
                .into());
            }
            py.import("numpy")?
                .call_method1("asarray", (obj,))
                .map_err(|e| {
                    PyErr::from(Error::invalid(format!(
                        "{what} must be a NumPy uint8 array of shape (H, W, 3), got {} that NumPy \
                         cannot convert ({})",
                        type_name(obj),
                        e.value(py)
                    )))
                })?
                .cast_into::<PyUntypedArray>()?
        }
    };
    let dtype = arr.dtype();
    if !dtype.is_equiv_to(&numpy::dtype::<u8>(py)) {
        let name = dtype.str()?.to_string_lossy().into_owned();
        let hint = if dtype.is_equiv_to(&numpy::dtype::<f32>(py))
            || dtype.is_equiv_to(&numpy::dtype::<f64>(py))
        {
            "; for floats in [0, 1] convert with (img * 255).round().clip(0, 255).astype(numpy.uint8)"
        } else {
            "; convert with img.clip(0, 255).astype(numpy.uint8)"
        };
        return Err(Error::invalid(format!(
            "{what} must have dtype uint8 (RGB values 0-255), got {name}{hint}"
        ))
        .into());
    }
    let typed = arr.cast_into::<PyArrayDyn<u8>>()?;
    Ok(typed
        .try_readonly()
        .map_err(|e| Error::invalid(format!("{what}: {e}")))?)
}

/// A borrowed view as an image: in place if C-contiguous, else copied.
fn rgb<'a>(view: ArrayView3<'a, u8>) -> Rgb8<'a> {
    let (h, w) = (view.shape()[0], view.shape()[1]);
    let data = match view.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(view.iter().copied().collect()),
    };
    Rgb8 { data, h, w }
}

fn owned(img: Rgb8<'_>) -> Rgb8<'static> {
    Rgb8 {
        data: Cow::Owned(img.data.into_owned()),
        h: img.h,
        w: img.w,
    }
}

/// The images of an `embed_images` argument: one `(N, H, W, 3)` array or a
/// sequence of `(H, W, 3)` arrays (sizes may differ).
enum Batch<'py> {
    Stacked(PyReadonlyArrayDyn<'py, u8>),
    List(Vec<PyReadonlyArrayDyn<'py, u8>>),
}

impl<'py> Batch<'py> {
    fn parse(obj: &Bound<'py, PyAny>) -> PyResult<Self> {
        if obj.cast::<PyUntypedArray>().is_ok() {
            let arr = u8_array(obj, "images")?;
            let shape = arr.shape().to_vec();
            if shape.len() != 4 {
                let hint = if shape.len() == 3 {
                    "; for one image use embed_image(img) or pass [img]"
                } else {
                    ""
                };
                return Err(Error::invalid(format!(
                    "images must be a 4-D array of shape (N, H, W, 3) or a list of (H, W, 3) arrays, \
                     got a {}-D array of shape {}{hint}",
                    shape.len(),
                    shape_text(&shape)
                ))
                .into());
            }
            check_image_shape(&shape[1..], "images[i]").map_err(|e| match e {
                Error::Base(BaseError::InvalidArgument(m)) => {
                    Error::invalid(format!("{m} (the batch has shape {})", shape_text(&shape)))
                }
                other => other,
            })?;
            return Ok(Batch::Stacked(arr));
        }
        let not_images = || {
            PyErr::from(Error::invalid(format!(
                "images must be a (N, H, W, 3) uint8 array or a sequence of (H, W, 3) uint8 arrays, got {}",
                type_name(obj)
            )))
        };
        if obj.is_instance_of::<PyString>() || obj.is_instance_of::<PyBytes>() {
            return Err(not_images());
        }
        let iter = obj.try_iter().map_err(|_| not_images())?;
        let mut out = Vec::new();
        for (i, item) in iter.enumerate() {
            let what = format!("images[{i}]");
            let arr = u8_array(&item?, &what)?;
            check_image_shape(arr.shape(), &what)?;
            out.push(arr);
        }
        Ok(Batch::List(out))
    }

    fn views(&self) -> Result<Vec<ArrayView3<'_, u8>>> {
        match self {
            Batch::Stacked(a) => {
                let v = a
                    .as_array()
                    .into_dimensionality::<Ix4>()
                    .map_err(|e| Error::invalid(format!("images: {e}")))?;
                Ok((0..v.shape()[0])
                    .map(|i| v.index_axis_move(Axis(0), i))
                    .collect())
            }
            Batch::List(list) => list.iter().map(view3).collect(),
        }
    }
}

fn single<'py>(obj: &Bound<'py, PyAny>) -> PyResult<PyReadonlyArrayDyn<'py, u8>> {
    let arr = u8_array(obj, "image")?;
    check_image_shape(arr.shape(), "image")?;
    Ok(arr)
}

/// A 3-D view of an array whose shape was checked (an error, not a panic,
/// if it was not).
fn view3<'a>(arr: &'a PyReadonlyArrayDyn<'_, u8>) -> Result<ArrayView3<'a, u8>> {
    arr.as_array()
        .into_dimensionality::<Ix3>()
        .map_err(|e| Error::invalid(format!("image: {e}")))
}

/// Image embeddings computed in Rust: torchvision's ``mobilenet_v3_small``
/// features (576-d) with torchvision's ImageNet preprocessing.
///
/// Build one with :meth:`ImageEmbedder.from_pretrained`. Without a weights
/// file the weights are *untrained*: deterministic, but the features are not
/// semantic (see :attr:`pretrained`). Thread-safe; batch calls run on the
/// wheel's thread pool with the GIL released.
#[pyclass(frozen, module = "ruvector_embed", name = "ImageEmbedder")]
pub struct ImageEmbedder {
    model: Arc<ImageModel>,
    name: String,
    source: String,
    /// The weights file as Python gave it (may hold surrogate escapes).
    weights_path: Option<Py<PyString>>,
}

impl ImageEmbedder {
    /// Resolves the weights (Python resolver) and loads them.
    #[allow(clippy::too_many_arguments)]
    pub fn create(
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        weights: Option<&Bound<'_, PyAny>>,
        pretrained: Option<bool>,
        cache_dir: Option<&Bound<'_, PyAny>>,
        download: Option<&Bound<'_, PyAny>>,
        sources: Option<&Bound<'_, PyAny>>,
        normalize: Option<bool>,
    ) -> PyResult<Self> {
        let kwargs = PyDict::new(py);
        kwargs.set_item("weights", weights)?;
        kwargs.set_item("pretrained", pretrained)?;
        kwargs.set_item("cache_dir", cache_dir)?;
        kwargs.set_item("download", download)?;
        kwargs.set_item("sources", sources)?;
        let resolved = RESOLVE_IMAGE_WEIGHTS
            .get(py)?
            .call((name,), Some(&kwargs))?;
        let path = resolved.getattr("path")?;
        let (weights_path, file): (Option<Py<PyString>>, Option<std::path::PathBuf>) =
            if path.is_none() {
                (None, None)
            } else {
                // A PathBuf keeps non-UTF-8 file names (surrogate escapes).
                (Some(path.str()?.unbind()), Some(path.extract()?))
            };
        let digests = resolved.getattr("digests")?.extract()?;
        let net = match &file {
            Some(file) => {
                let shown = file.display().to_string();
                let (dir, base) = match (file.parent(), file.file_name()) {
                    (Some(d), Some(b)) => (d.to_path_buf(), b.to_os_string()),
                    _ => {
                        return Err(
                            Error::Embed(format!("weights path {shown} names no file")).into()
                        )
                    }
                };
                py.detach(|| {
                    guarded(|| -> Result<MobileNetV3Small> {
                        let opened =
                            ModelDir::new(dir, digests).open_name(&base, MAX_WEIGHTS_BYTES)?;
                        let st = SafeTensors::open(&shown, opened, |_| Ok(()))?;
                        MobileNetV3Small::load(&st)
                    })
                })?
            }
            None => py.detach(MobileNetV3Small::untrained),
        };
        Ok(Self {
            model: Arc::new(ImageModel {
                net,
                normalize: normalize.unwrap_or(true),
            }),
            name: resolved.getattr("name")?.extract()?,
            source: resolved.getattr("source")?.extract()?,
            weights_path,
        })
    }
}

#[pymethods]
impl ImageEmbedder {
    /// Loads ``mobilenetv3-small`` with weights from ``weights`` (a
    /// ``.safetensors`` file or a folder holding ``model.safetensors``),
    /// else from the offline sources of
    /// ``ruvector_embed.resolve_image_weights``; if none holds them,
    /// ``EmbedError`` naming where it looked and the command that converts
    /// torchvision's weights. ``weights="untrained"`` or ``pretrained=False``
    /// asks for the deterministic untrained weights (not semantic).
    #[classmethod]
    #[pyo3(signature = (name=None, *, weights=None, pretrained=None, normalize=None, cache_dir=None, sources=None))]
    #[allow(clippy::too_many_arguments)]
    fn from_pretrained(
        _cls: &Bound<'_, PyType>,
        py: Python<'_>,
        name: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
        pretrained: Option<bool>,
        normalize: Option<bool>,
        cache_dir: Option<&Bound<'_, PyAny>>,
        sources: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let default = PyString::new(py, "mobilenetv3-small").into_any();
        let name = name.unwrap_or(&default);
        Self::create(
            py, name, weights, pretrained, cache_dir, None, sources, normalize,
        )
    }

    /// Pickles by reference: the model's file paths, sizes and SHA-256
    /// digests and its settings, not its weights; unpickling checks the
    /// files again and loads them (a changed file raises ``EmbedError``).
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        REDUCE_IMAGE_EMBEDDER.get(slf.py())?.call1((slf,))
    }

    /// The same embedder: it is immutable, so a copy is not needed.
    fn __copy__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The same embedder (see ``__copy__``).
    fn __deepcopy__(slf: Py<Self>, _memo: &Bound<'_, PyAny>) -> Py<Self> {
        slf
    }

    /// Embeds one ``(H, W, 3)`` uint8 RGB image: a ``(576,)`` float32 array.
    fn embed_image(&self, py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let arr = single(image)?;
        let view = view3(&arr)?;
        let v = py.detach(|| self.model.embed_one(&rgb(view)))?;
        Ok(f32_vector(py, v))
    }

    /// Embeds a ``(N, H, W, 3)`` uint8 array or a sequence of ``(H, W, 3)``
    /// uint8 arrays (sizes may differ): ``(N, 576)`` float32, computed on the
    /// wheel's thread pool with the GIL released. Ctrl-C stops it within
    /// about an image's work and raises ``KeyboardInterrupt``.
    fn embed_images(&self, py: Python<'_>, images: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let batch = Batch::parse(images)?;
        let views = batch.views()?;
        let model = &self.model;
        let m = run_interruptible(py, |cancel| {
            let imgs: Vec<Rgb8<'_>> = views.into_iter().map(rgb).collect();
            model.embed_many(&imgs, cancel)
        })?;
        f32_matrix(py, m, FEATURE_DIM)
    }

    /// Awaitable :meth:`embed_image` (the pixels are copied first).
    fn embed_image_async<'py>(
        &self,
        py: Python<'py>,
        image: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let arr = single(image)?;
        let img = owned(rgb(view3(&arr)?));
        let model = Arc::clone(&self.model);
        runtime::awaitable(
            py,
            move || model.embed_one(&img),
            Box::new(|py, v: Vec<f32>| Ok(f32_vector(py, v))),
        )
    }

    /// Awaitable :meth:`embed_images` (the pixels are copied first).
    fn embed_images_async<'py>(
        &self,
        py: Python<'py>,
        images: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let batch = Batch::parse(images)?;
        let imgs: Vec<Rgb8<'static>> = batch.views()?.into_iter().map(|v| owned(rgb(v))).collect();
        let model = Arc::clone(&self.model);
        runtime::awaitable(
            py,
            move || model.embed_many(&imgs, &Cancel::new()),
            Box::new(|py, m: Vec<f32>| f32_matrix(py, m, FEATURE_DIM)),
        )
    }

    /// The network input of one image: ``(3, 224, 224)`` float32 after the
    /// resize, centre crop and ImageNet normalisation.
    fn preprocess(&self, py: Python<'_>, image: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let arr = single(image)?;
        let view = view3(&arr)?;
        let x = py.detach(|| guarded(|| Ok(rgb(view).preprocess())))?;
        Ok(PyArray1::from_vec(py, x)
            .reshape([3, CROP, CROP])?
            .into_any()
            .unbind())
    }

    /// Length of the features: 576.
    #[getter]
    fn dim(&self) -> usize {
        FEATURE_DIM
    }

    /// Side of the square network input: 224.
    #[getter]
    fn input_size(&self) -> usize {
        CROP
    }

    /// Whether the weights were loaded from a checkpoint file. ``False``:
    /// untrained weights, whose features are deterministic but NOT semantic.
    #[getter]
    fn pretrained(&self) -> bool {
        self.weights_path.is_some()
    }

    /// The ``.safetensors`` file the weights came from (``None``: untrained).
    #[getter]
    fn weights_path(&self, py: Python<'_>) -> Option<Py<PyString>> {
        self.weights_path.as_ref().map(|p| p.clone_ref(py))
    }

    /// Whether features are L2-normalised (unit length).
    #[getter]
    fn normalize(&self) -> bool {
        self.model.normalize
    }

    /// The architecture: ``"mobilenetv3-small"``.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// Where the weights came from: ``"explicit"``, ``"directory"``,
    /// ``"env"``, ``"cache"`` or ``"untrained"``.
    #[getter]
    fn source(&self) -> &str {
        &self.source
    }

    /// Bytes of weights held in memory.
    #[getter]
    fn memory_bytes(&self) -> usize {
        self.model.net.weight_bytes()
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let weights = match &self.weights_path {
            Some(p) => format!(
                "pretrained=True, weights={}, source='{}'",
                p.bind(py)
                    .repr()
                    .map(|r| r.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                self.source
            ),
            None => "pretrained=False, weights=None: UNTRAINED weights, the features are \
                     deterministic but NOT semantic"
                .to_string(),
        };
        format!(
            "ImageEmbedder(name='{}', kind='image', dim={FEATURE_DIM}, normalize={}, {weights})",
            self.name,
            if self.model.normalize {
                "True"
            } else {
                "False"
            },
        )
    }
}
