//! Indexing: strided slices, channel zero-padding, index-select, gather, concat.
//! Each backward scatters (adds) the gradient back into zeros of the input's shape.
use crate::backend::SliceRange;
use crate::error::{invalid, Error, Result};
use crate::tape::Backward;
use crate::{Shape, Storage, Tensor};

#[derive(Debug)]
struct SliceBackward {
    ranges: Vec<SliceRange>,
}

impl Backward for SliceBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let shape = inputs[0].shape();
        let s = g.storage().slice_backward(shape, &self.ranges)?;
        Ok(vec![Some(Tensor::from_storage(s, shape.clone())?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct PadChannelsBackward {
    before: usize,
}

impl Backward for PadChannelsBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let c = inputs[0].dims()[1];
        Ok(vec![Some(g.slice_axis(
            1,
            self.before,
            self.before + c,
            1,
        )?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct IndexSelectBackward {
    axis: usize,
    indices: Vec<usize>,
}

impl Backward for IndexSelectBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let shape = inputs[0].shape();
        let s = g.storage().index_add(shape, self.axis, &self.indices)?;
        Ok(vec![Some(Tensor::from_storage(s, shape.clone())?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct GatherBackward {
    axis: usize,
    indices: Vec<usize>,
}

impl Backward for GatherBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let shape = inputs[0].shape();
        let s = g
            .storage()
            .scatter_add(shape, self.axis, &self.indices, g.shape())?;
        Ok(vec![Some(Tensor::from_storage(s, shape.clone())?)])
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

#[derive(Debug)]
struct ConcatBackward {
    axis: usize,
}

impl Backward for ConcatBackward {
    fn backward(&self, g: &Tensor, inputs: &[Tensor]) -> Result<Vec<Option<Tensor>>> {
        let mut start = 0;
        inputs
            .iter()
            .map(|t| {
                let len = t.dims()[self.axis];
                let part = g.slice_axis(self.axis as isize, start, start + len, 1)?;
                start += len;
                Ok(Some(part))
            })
            .collect()
    }
    fn needs_input_values(&self) -> bool {
        false
    }
}

impl Tensor {
    /// Strided slice: per axis `(start, end, step)` (end exclusive, clipped to the size).
    /// `y[j] = x[start + j · step]` per axis; `dx` is zeros with `dy` added at the read
    /// positions.
    pub fn slice(&self, ranges: &[(usize, usize, usize)]) -> Result<Tensor> {
        if ranges.len() != self.rank() {
            return invalid(
                "slice",
                format!(
                    "{} ranges for a tensor of shape {:?}",
                    ranges.len(),
                    self.shape()
                ),
            );
        }
        let mut out = Vec::with_capacity(ranges.len());
        for (axis, (&(start, end, step), &d)) in ranges.iter().zip(self.dims()).enumerate() {
            if step == 0 || start > d {
                return invalid(
                    "slice",
                    format!("range {start}..{end} step {step} on axis {axis} of size {d}"),
                );
            }
            let len = (end.min(d).saturating_sub(start)).div_ceil(step);
            out.push(SliceRange { start, step, len });
        }
        let shape = Shape::new(out.iter().map(|r| r.len).collect::<Vec<_>>());
        let s = self.storage().slice(self.shape(), &out)?;
        Ok(Tensor::from_op(s, shape, &[self], |_| SliceBackward {
            ranges: out.clone(),
        }))
    }

    /// Slice along one axis, everything else whole (a [`Tensor::slice`], same gradient).
    pub fn slice_axis(&self, axis: isize, start: usize, end: usize, step: usize) -> Result<Tensor> {
        let a = self.shape().axis("slice", axis)?;
        let ranges: Vec<_> = self
            .dims()
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if i == a {
                    (start, end, step)
                } else {
                    (0, d, 1)
                }
            })
            .collect();
        self.slice(&ranges)
    }

    /// Adds `before` and `after` zero channels to an NCHW tensor (ResNet option-A shortcut):
    /// `y[:, before + c] = x[:, c]`, zeros elsewhere; `dx[:, c] = dy[:, before + c]`.
    pub fn pad_channels(&self, before: usize, after: usize) -> Result<Tensor> {
        if self.rank() < 2 {
            return invalid(
                "pad_channels",
                format!("needs [N, C, ...], got {:?}", self.shape()),
            );
        }
        let mut d = self.dims().to_vec();
        d[1] += before + after;
        let s = self.storage().pad_channels(self.shape(), before, after)?;
        Ok(Tensor::from_op(s, Shape::new(d), &[self], |_| {
            PadChannelsBackward { before }
        }))
    }

    /// Picks whole slices `indices` along `axis`: `y[.., j, ..] = x[.., indices[j], ..]`;
    /// `dx[.., i, ..] = sum of dy[.., j, ..] over the j with indices[j] = i` (repeats add).
    pub fn index_select(&self, axis: isize, indices: &[usize]) -> Result<Tensor> {
        let a = self.shape().axis("index_select", axis)?;
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.dims()[a]) {
            return invalid(
                "index_select",
                format!(
                    "index {bad} out of range for axis {a} of {:?}",
                    self.shape()
                ),
            );
        }
        let mut d = self.dims().to_vec();
        d[a] = indices.len();
        let s = self.storage().index_select(self.shape(), a, indices)?;
        Ok(Tensor::from_op(s, Shape::new(d), &[self], |_| {
            IndexSelectBackward {
                axis: a,
                indices: indices.to_vec(),
            }
        }))
    }

    /// PyTorch's gather: `out[i][j] = x[i][indices[i][j]]` (for axis 1); `indices` is laid
    /// out in `idx_shape`, which matches `self` except along `axis`. Gradient: scatter-add,
    /// `dx[i][indices[i][j]] += dy[i][j]`.
    pub fn gather(
        &self,
        axis: isize,
        indices: &[usize],
        idx_shape: impl Into<Shape>,
    ) -> Result<Tensor> {
        let idx_shape = idx_shape.into();
        let a = self.shape().axis("gather", axis)?;
        let fits = idx_shape.rank() == self.rank()
            && idx_shape
                .dims()
                .iter()
                .zip(self.dims())
                .enumerate()
                .all(|(i, (x, y))| i == a || x == y);
        if !fits || idx_shape.numel() != indices.len() {
            return Err(Error::Shape {
                op: "gather",
                msg: format!(
                    "{} indices shaped {idx_shape:?} for input {:?} on axis {a}",
                    indices.len(),
                    self.shape()
                ),
            });
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= self.dims()[a]) {
            return invalid(
                "gather",
                format!(
                    "index {bad} out of range for axis {a} of {:?}",
                    self.shape()
                ),
            );
        }
        let s = self
            .storage()
            .gather(self.shape(), a, indices, &idx_shape)?;
        Ok(Tensor::from_op(s, idx_shape, &[self], |_| GatherBackward {
            axis: a,
            indices: indices.to_vec(),
        }))
    }

    /// Joins tensors along `axis`; all other dimensions must match. `y = [x_1; x_2; ..]`
    /// along `axis`; each `dx_k` is `dy`'s slice where `x_k` was placed.
    pub fn concat(parts: &[Tensor], axis: isize) -> Result<Tensor> {
        let Some(first) = parts.first() else {
            return invalid("concat", "no tensors to join");
        };
        let a = first.shape().axis("concat", axis)?;
        for p in parts {
            super::check_same("concat", first, p)?;
            let ok = p.rank() == first.rank()
                && p.dims()
                    .iter()
                    .zip(first.dims())
                    .enumerate()
                    .all(|(i, (x, y))| i == a || x == y);
            if !ok {
                return Err(Error::Shape {
                    op: "concat",
                    msg: format!("{:?} and {:?} along axis {a}", first.shape(), p.shape()),
                });
            }
        }
        let mut d = first.dims().to_vec();
        d[a] = parts.iter().map(|p| p.dims()[a]).sum();
        let guards: Vec<_> = parts.iter().map(|p| p.storage()).collect();
        let refs: Vec<&Storage> = guards.iter().map(|g| &**g).collect();
        let shapes: Vec<Shape> = parts.iter().map(|p| p.shape().clone()).collect();
        let s = Storage::concat(&refs, &shapes, a)?;
        drop(guards);
        let inputs: Vec<&Tensor> = parts.iter().collect();
        Ok(Tensor::from_op(s, Shape::new(d), &inputs, |_| {
            ConcatBackward { axis: a }
        }))
    }
}
