//! The tape: a Wengert list of the ops that ran, recorded per thread.
//!
//! Each recorded op appends a [`Node`]; creation order is already a topological order, so
//! `backward` is one reverse loop over the list. Nodes hold their inputs (to reach their
//! gradients) but nothing holds the nodes except the tape, so there are no reference
//! cycles: `backward` (or [`clear`]) drops them all. Backward rules run with recording
//! off, using ordinary tensor ops, so they work on every device.
use crate::error::{Error, Result};
use crate::tensor::{sum_grads, Tensor, TensorId};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt::Debug;

/// An op's backward rule. `Debug` makes the recorded graph printable: the derived output
/// names the op and the values it saved.
pub trait Backward: Debug {
    /// Gradients of the loss w.r.t. each input (in the order the op recorded them), given
    /// the gradient w.r.t. the op's output; `None` for inputs that need none.
    fn backward(&self, grad_out: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>>;

    /// Whether the rule reads its inputs' *values*. Rules that need only their inputs'
    /// shapes (add, reshape, slices...) or their own output (relu, exp, softmax) say `false`,
    /// and the tape then keeps a value-less shell of each non-leaf input instead of the
    /// tensor: a ResNet's batch-norm and add outputs are freed as soon as the next op has
    /// consumed them, instead of living until the backward pass.
    fn needs_input_values(&self) -> bool {
        true
    }
}

/// Where a node sits: the tape's generation (bumped whenever the tape is emptied) and index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeRef {
    generation: u64,
    index: usize,
}

/// One recorded op.
pub struct Node {
    pub output: TensorId,
    pub inputs: Vec<Tensor>,
    pub op: Box<dyn Backward>,
}

#[derive(Default)]
struct Tape {
    nodes: Vec<Node>,
    generation: u64,
}

thread_local! {
    static TAPE: RefCell<Tape> = RefCell::new(Tape::default());
    static NO_GRAD_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Whether ops on this thread are being recorded now.
pub fn is_recording() -> bool {
    NO_GRAD_DEPTH.with(|d| d.get() == 0)
}

/// Runs `f` without recording anything (evaluation, optimiser steps, backward rules).
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    struct Restore;
    impl Drop for Restore {
        fn drop(&mut self) {
            NO_GRAD_DEPTH.with(|d| d.set(d.get() - 1));
        }
    }
    NO_GRAD_DEPTH.with(|d| d.set(d.get() + 1));
    let _restore = Restore;
    f()
}

pub(crate) fn push(output: TensorId, inputs: Vec<Tensor>, op: Box<dyn Backward>) -> NodeRef {
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        t.nodes.push(Node { output, inputs, op });
        NodeRef {
            generation: t.generation,
            index: t.nodes.len() - 1,
        }
    })
}

/// Drops every recorded node (e.g. after a forward pass whose result is not differentiated).
pub fn clear() {
    take_nodes();
}

/// Number of nodes recorded on this thread.
pub fn len() -> usize {
    TAPE.with(|t| t.borrow().nodes.len())
}

/// One line per recorded node: index, output id, op (with its saved values' shapes),
/// input ids.
pub fn describe() -> String {
    TAPE.with(|t| {
        t.borrow()
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let ins: Vec<String> = n.inputs.iter().map(|t| format!("#{}", t.id())).collect();
                format!(
                    "{i:4}: #{} = {:?} <- [{}]\n",
                    n.output,
                    n.op,
                    ins.join(", ")
                )
            })
            .collect()
    })
}

fn take_nodes() -> (Vec<Node>, u64) {
    TAPE.with(|t| {
        let mut t = t.borrow_mut();
        let generation = t.generation;
        t.generation += 1;
        (std::mem::take(&mut t.nodes), generation)
    })
}

/// Reverse pass from `root` with upstream gradient `seed`. Consumes the whole tape.
pub(crate) fn backward(root: &Tensor, seed: Tensor) -> Result<()> {
    if !root.requires_grad() {
        return Err(Error::Tape(format!(
            "{root:?} does not require grad: no parameter contributed to it, or it was computed under no_grad"
        )));
    }
    let Some(node_ref) = root.node() else {
        // A parameter differentiated w.r.t. itself.
        return root.accumulate_grad(seed);
    };
    let (nodes, generation) = take_nodes();
    if node_ref.generation != generation || node_ref.index >= nodes.len() {
        return Err(Error::Tape(format!(
            "the graph of {root:?} was already consumed by an earlier backward() or tape::clear(); run the forward pass again"
        )));
    }
    no_grad(|| {
        let mut grads: HashMap<TensorId, Tensor> = HashMap::new();
        grads.insert(root.id(), seed);
        for node in nodes[..=node_ref.index].iter().rev() {
            let Some(g) = grads.remove(&node.output) else {
                continue;
            };
            let input_grads = node.op.backward(&g, &node.inputs)?;
            for (input, ig) in node.inputs.iter().zip(input_grads) {
                let Some(ig) = ig else { continue };
                if !input.requires_grad() {
                    continue;
                }
                if ig.shape() != input.shape() {
                    return Err(Error::Tape(format!(
                        "{:?} returned a gradient of shape {:?} for an input of shape {:?}",
                        node.op,
                        ig.shape(),
                        input.shape()
                    )));
                }
                if input.is_leaf() {
                    input.accumulate_grad(ig)?;
                } else if let Some(prev) = grads.remove(&input.id()) {
                    grads.insert(input.id(), sum_grads(prev, ig)?);
                } else {
                    grads.insert(input.id(), ig);
                }
            }
        }
        Ok(())
    })
}
