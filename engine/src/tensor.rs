//! The one tensor type: a shape, a storage on some device, and (when it takes part in
//! autodiff) a place on the tape and a gradient slot. Copies between devices and dtypes,
//! `assign` and reads to the host are in `tensor/values.rs`.
use crate::cpu::CpuStorage;
use crate::error::{Error, Result};
use crate::storage::Storage;
use crate::tape::{self, Backward, NodeRef};
use crate::{DType, Device, Float, Shape};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};

mod values;
pub(crate) use values::GradUpdate;

/// Unique identity of a tensor (views made by `reshape`/`detach` get their own).
pub type TensorId = u64;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> TensorId {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// A cheap-to-clone handle to an n-dimensional array.
#[derive(Clone)]
pub struct Tensor(Arc<Inner>);

struct Inner {
    id: TensorId,
    shape: Shape,
    dtype: DType,
    device: Device,
    /// Shared so that reshape and detach are free; written only by optimisers and
    /// running-statistics updates, between steps.
    storage: Arc<RwLock<Storage>>,
    requires_grad: bool,
    /// The tape node that produced this tensor; `None` for leaves.
    node: Option<NodeRef>,
    /// Accumulated gradient (leaves only).
    grad: Mutex<Option<Tensor>>,
}

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Tensor#{}({:?}, {}, {}{})",
            self.0.id,
            self.0.shape,
            self.0.dtype,
            self.0.device,
            if self.0.requires_grad { ", grad" } else { "" }
        )
    }
}

impl Tensor {
    // ----- construction -------------------------------------------------------------

    fn build(
        storage: Arc<RwLock<Storage>>,
        shape: Shape,
        requires_grad: bool,
        node: Option<NodeRef>,
    ) -> Tensor {
        let (dtype, device) = {
            let s = storage.read().expect("storage lock poisoned");
            (s.dtype(), s.device())
        };
        Tensor(Arc::new(Inner {
            id: next_id(),
            shape,
            dtype,
            device,
            storage,
            requires_grad,
            node,
            grad: Mutex::new(None),
        }))
    }

    /// A constant (no gradient) from a storage whose length matches `shape`.
    pub fn from_storage(storage: Storage, shape: impl Into<Shape>) -> Result<Tensor> {
        let shape = shape.into();
        if storage.len() != shape.numel() {
            return Err(Error::Shape {
                op: "from_storage",
                msg: format!("{} values cannot fill shape {shape:?}", storage.len()),
            });
        }
        Ok(Self::build(
            Arc::new(RwLock::new(storage)),
            shape,
            false,
            None,
        ))
    }

    /// A CPU tensor from values in row-major order.
    pub fn from_vec<T: Float>(values: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        Self::from_storage(Storage::Cpu(CpuStorage::from_vec(values)), shape)
    }

    pub fn from_slice<T: Float>(values: &[T], shape: impl Into<Shape>) -> Result<Tensor> {
        Self::from_vec(values.to_vec(), shape)
    }

    pub fn full(shape: impl Into<Shape>, value: f64, dtype: DType) -> Tensor {
        let shape = shape.into();
        let n = shape.numel();
        let storage = match dtype {
            DType::F32 => CpuStorage::F32(vec![value as f32; n]),
            DType::F64 => CpuStorage::F64(vec![value; n]),
        };
        Self::build(
            Arc::new(RwLock::new(Storage::Cpu(storage))),
            shape,
            false,
            None,
        )
    }

    pub fn zeros(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Self::full(shape, 0.0, dtype)
    }

    pub fn ones(shape: impl Into<Shape>, dtype: DType) -> Tensor {
        Self::full(shape, 1.0, dtype)
    }

    pub fn scalar(value: f64, dtype: DType) -> Tensor {
        Self::full(Shape::scalar(), value, dtype)
    }

    /// Zeros with this tensor's shape, dtype and device.
    pub fn zeros_like(&self) -> Result<Tensor> {
        Tensor::zeros(self.shape().clone(), self.dtype()).to_device(self.device())
    }

    /// A trainable leaf: same values, records gradients from now on.
    pub fn into_parameter(self) -> Tensor {
        Self::build(self.0.storage.clone(), self.0.shape.clone(), true, None)
    }

    /// A parameter made directly from values.
    pub fn parameter<T: Float>(values: Vec<T>, shape: impl Into<Shape>) -> Result<Tensor> {
        Ok(Self::from_vec(values, shape)?.into_parameter())
    }

    /// Same values, cut from the graph (shares the storage).
    pub fn detach(&self) -> Tensor {
        Self::build(self.0.storage.clone(), self.0.shape.clone(), false, None)
    }

    /// Records the result of an op. When autodiff is on and an input needs a gradient,
    /// `make_backward` is called (with the new tensor, for ops whose backward uses their
    /// output) and the node goes on the tape.
    pub(crate) fn from_op<B: Backward + 'static>(
        storage: Storage,
        shape: Shape,
        inputs: &[&Tensor],
        make_backward: impl FnOnce(&Tensor) -> B,
    ) -> Tensor {
        debug_assert_eq!(
            storage.len(),
            shape.numel(),
            "op produced the wrong element count"
        );
        Self::from_op_shared(Arc::new(RwLock::new(storage)), shape, inputs, make_backward)
    }

    /// Records an op defined outside the engine: `value` is its result, computed any way
    /// (host code, or engine ops under [`no_grad`](crate::no_grad) so they leave no
    /// nodes of their own), and `backward` its gradient rule, which the tape calls with
    /// `inputs` in this order. The engine's own ops go through the same door
    /// (`from_op`), so a custom op is as much a node as `relu`: printable by
    /// [`tape::describe`], checkable by [`gradcheck`](crate::gradcheck).
    /// `examples/custom_op.rs` writes one and checks it.
    pub fn custom_op(
        value: &Tensor,
        inputs: &[&Tensor],
        backward: impl Backward + 'static,
    ) -> Tensor {
        Self::from_op_shared(
            value.shared_storage(),
            value.shape().clone(),
            inputs,
            |_| backward,
        )
    }

    /// Like [`Tensor::from_op`], for ops that reuse an input's buffer (reshape).
    pub(crate) fn from_op_shared<B: Backward + 'static>(
        storage: Arc<RwLock<Storage>>,
        shape: Shape,
        inputs: &[&Tensor],
        make_backward: impl FnOnce(&Tensor) -> B,
    ) -> Tensor {
        if !tape::is_recording() || !inputs.iter().any(|t| t.requires_grad()) {
            return Self::build(storage, shape, false, None);
        }
        // Build the output first (without a node) so the backward can keep a view of it.
        let provisional = Self::build(storage.clone(), shape.clone(), false, None);
        let op = make_backward(&provisional);
        let id = next_id();
        let keep_values = op.needs_input_values();
        let node = tape::push(
            id,
            inputs
                .iter()
                .map(|t| {
                    if keep_values || t.is_leaf() {
                        (*t).clone()
                    } else {
                        t.shell()
                    }
                })
                .collect(),
            Box::new(op),
        );
        let (dtype, device) = (provisional.dtype(), provisional.device());
        Tensor(Arc::new(Inner {
            id,
            shape,
            dtype,
            device,
            storage,
            requires_grad: true,
            node: Some(node),
            grad: Mutex::new(None),
        }))
    }

    /// The same tensor for the tape's purposes (id, shape, dtype, device, node) without its
    /// values: what a node keeps of an input whose values its backward rule never reads.
    /// Leaves are never shelled (their gradient slot lives in the real tensor).
    fn shell(&self) -> Tensor {
        Tensor(Arc::new(Inner {
            id: self.0.id,
            shape: self.0.shape.clone(),
            dtype: self.0.dtype,
            device: self.0.device,
            storage: Arc::new(RwLock::new(Storage::Cpu(CpuStorage::zeros(
                self.0.dtype,
                0,
            )))),
            requires_grad: self.0.requires_grad,
            node: self.0.node,
            grad: Mutex::new(None),
        }))
    }

    // ----- inspection -----------------------------------------------------------------

    pub fn id(&self) -> TensorId {
        self.0.id
    }
    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }
    pub fn dims(&self) -> &[usize] {
        self.0.shape.dims()
    }
    pub fn rank(&self) -> usize {
        self.0.shape.rank()
    }
    pub fn numel(&self) -> usize {
        self.0.shape.numel()
    }
    pub fn dtype(&self) -> DType {
        self.0.dtype
    }
    pub fn device(&self) -> Device {
        self.0.device
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad
    }
    /// A leaf is a tensor no recorded op produced (inputs, parameters, constants).
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }
    pub(crate) fn node(&self) -> Option<NodeRef> {
        self.0.node
    }

    pub(crate) fn shared_storage(&self) -> Arc<RwLock<Storage>> {
        self.0.storage.clone()
    }

    /// Read access to the storage.
    pub fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0.storage.read().expect("storage lock poisoned")
    }

    /// Write access to the storage, for in-place updates between steps (optimisers,
    /// running statistics, checkpoint loading). The shape and dtype must not change.
    pub fn storage_mut(&self) -> RwLockWriteGuard<'_, Storage> {
        self.0.storage.write().expect("storage lock poisoned")
    }

    // ----- gradients --------------------------------------------------------------------

    /// The gradient accumulated by `backward()` (leaves that require grad only).
    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.lock().expect("grad lock poisoned").clone()
    }

    /// Forgets the accumulated gradient.
    pub fn zero_grad(&self) {
        *self.0.grad.lock().expect("grad lock poisoned") = None;
    }

    pub(crate) fn accumulate_grad(&self, g: Tensor) -> Result<()> {
        let mut slot = self.0.grad.lock().expect("grad lock poisoned");
        *slot = Some(match slot.take() {
            None => g,
            Some(prev) => sum_grads(prev, g)?,
        });
        Ok(())
    }

    /// Backpropagates from this scalar: every leaf that requires grad and contributed gets
    /// `d self / d leaf` added to its gradient. Consumes the tape.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Tape(format!(
                "backward() needs a scalar, this tensor has shape {:?}; use backward_with(grad)",
                self.shape()
            )));
        }
        let seed = Tensor::ones(self.shape().clone(), self.dtype()).to_device(self.device())?;
        tape::backward(self, seed)
    }

    /// Backpropagates with an explicit upstream gradient of this tensor's shape.
    pub fn backward_with(&self, grad: &Tensor) -> Result<()> {
        if grad.shape() != self.shape() || grad.dtype() != self.dtype() {
            return Err(Error::Tape(format!(
                "upstream gradient {:?} {} does not match tensor {:?} {}",
                grad.shape(),
                grad.dtype(),
                self.shape(),
                self.dtype()
            )));
        }
        tape::backward(self, grad.detach())
    }
}

/// `a + b` for two gradients of one tensor, written over whichever of them nothing else
/// holds (float addition commutes exactly, so the bits do not depend on which), else into
/// a new tensor.
pub(crate) fn sum_grads(a: Tensor, b: Tensor) -> Result<Tensor> {
    if b.update_if_unshared(&a, GradUpdate::Add) {
        return Ok(b);
    }
    if a.update_if_unshared(&b, GradUpdate::Add) {
        return Ok(a);
    }
    a.add(&b)
}
