"""The weights of a pack of MLPs of one shape, stacked for one batched training step. No UI imports.

Layer l's weights live in one tensor `(K, out, in)` (nn.Linear's layout for each of the K members),
its biases in `(K, out)`, batch-norm scales, shifts and running statistics in `(K, width)`. Each
member keeps its own `nn.Sequential` (equal to `build_mlp(config.model)`) whose parameters and
buffers are views of its slice, and whose parameters' `.grad` are views of one stacked gradient
buffer: a member's `torch.optim` optimizer, its evaluation and its `model.pt` work on it exactly as on
a lone model, while `forward` runs one batched step for all members.

- `forward(x)`: `x` is one batch `(B, in)` that every member sees (the first layer is then one
  GEMM `(B, in) @ (in, K*out)`), or `(K, B, in)`, one batch per member (`baddbmm`).
- Dropout draws each member's masks from that member's own generator, so a member draws the
  same masks in a pack as alone.
- `keep(slots)` drops the members that left the pack; the others' numbers are untouched.
"""

from __future__ import annotations

import torch
from torch import nn

BN_MOMENTUM, BN_EPS = 0.1, 1e-5  # nn.BatchNorm1d's defaults, which build_mlp uses


def stacked_linear(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """(B, in) shared or (K, B, in) per member, times (K, out, in) weights, to (K, B, out)."""
    if len(weight) == 1:  # a pack of one: nn.Linear's own kernel, as fast as a lone model
        return nn.functional.linear(h.reshape(-1, h.shape[-1]), weight.view(weight.shape[1:]), bias.view(-1)).unsqueeze(0)
    if h.dim() == 2:  # one batch for all members: a single GEMM over the members' output columns
        k, out = weight.shape[:2]
        wide = nn.functional.linear(h, weight.reshape(k * out, -1), bias.reshape(-1))
        return wide.view(len(h), k, out).transpose(0, 1)
    return torch.baddbmm(bias.unsqueeze(1), h, weight.transpose(1, 2))


def stacked_batch_norm(h: torch.Tensor, weight, bias, running_mean, running_var, tracked) -> torch.Tensor:
    """nn.BatchNorm1d in training mode for each member of `h` (K, B, C), running statistics included."""
    h = h.to(weight.dtype)  # statistics in the weights' precision, also under bf16 autocast
    mean = h.mean(1)
    var = h.var(1, correction=0)
    with torch.no_grad():
        n = h.shape[1]
        running_mean.mul_(1 - BN_MOMENTUM).add_(mean.detach(), alpha=BN_MOMENTUM)
        running_var.mul_(1 - BN_MOMENTUM).add_(var.detach() * (n / (n - 1)), alpha=BN_MOMENTUM)
        tracked.add_(1)
    return (h - mean.unsqueeze(1)) * torch.rsqrt(var.unsqueeze(1) + BN_EPS) * weight.unsqueeze(1) + bias.unsqueeze(1)


def _layers(model: nn.Sequential, kind: type) -> list[nn.Module]:
    return [m for m in model if isinstance(m, kind)]


class Stack:
    """The stacked weights of `models` (one per member, same shapes), bound to them as views."""

    def __init__(self, models: list[nn.Sequential], dropouts: list[float], generators: list[torch.Generator],
                 device: torch.device, dtype: torch.dtype) -> None:
        self.models, self.dropouts, self.generators = list(models), list(dropouts), list(generators)
        first = models[0]
        self.activation = next(m for m in first if not isinstance(m, (nn.Linear, nn.BatchNorm1d, nn.Dropout)))
        self.n_linear, self.batchnorm = len(_layers(first, nn.Linear)), bool(_layers(first, nn.BatchNorm1d))
        # one stacked leaf per (layer kind, index, name), in the order of `_named_tensors`
        self.params = [torch.stack([t.detach() for t in ts]).to(device, dtype).requires_grad_()
                       for ts in zip(*(self._params_of(m) for m in models))]
        self.buffers = [torch.stack([t for t in ts]).to(device) for ts in zip(*(self._buffers_of(m) for m in models))]
        self.buffers = [b.to(dtype) if b.is_floating_point() else b for b in self.buffers]
        self.grads = [torch.zeros_like(p) for p in self.params]
        self._bind()

    @staticmethod
    def _params_of(model: nn.Sequential) -> list[torch.Tensor]:
        out = []
        for layer in _layers(model, nn.Linear) + _layers(model, nn.BatchNorm1d):
            out += [layer.weight, layer.bias]
        return out

    @staticmethod
    def _buffers_of(model: nn.Sequential) -> list[torch.Tensor]:
        out = []
        for layer in _layers(model, nn.BatchNorm1d):
            out += [layer.running_mean, layer.running_var, layer.num_batches_tracked]
        return out

    def _bind(self) -> None:
        """Point every member's parameters, gradients and buffers at its slice of the stacks."""
        for k, model in enumerate(self.models):
            for param, stacked, grad in zip(self._params_of(model), self.params, self.grads):
                param.data = stacked.data[k]
                param.grad = grad[k]
            norms = _layers(model, nn.BatchNorm1d)
            for i, layer in enumerate(norms):
                for j, name in enumerate(("running_mean", "running_var", "num_batches_tracked")):
                    layer._buffers[name] = self.buffers[3 * i + j][k]

    def add(self, model: nn.Sequential, dropout: float, generator: torch.Generator) -> None:
        """A new member joins in the last slot; the others' weights are copied over unchanged."""
        self.params = [torch.cat([p.detach(), t.detach().to(p)[None]]).requires_grad_()
                       for p, t in zip(self.params, self._params_of(model))]
        self.buffers = [torch.cat([b, t.to(b)[None]]) for b, t in zip(self.buffers, self._buffers_of(model))]
        self.grads = [torch.zeros_like(p) for p in self.params]  # overwritten by every step
        self.models.append(model)
        self.dropouts.append(dropout)
        self.generators.append(generator)
        self._bind()

    def release(self, slot: int) -> None:
        """Give the member at `slot` its own copies of its weights (it leaves; its model stays valid)."""
        model = self.models[slot]
        for param in self._params_of(model):
            param.data = param.data.clone()
            param.grad = None
        for layer in _layers(model, nn.BatchNorm1d):
            for name, buffer in list(layer._buffers.items()):
                layer._buffers[name] = buffer.clone()

    def keep(self, slots: list[int]) -> None:
        """Only the members at `slots` stay (in that order); the others' weights are dropped."""
        index = torch.tensor(slots, device=self.params[0].device, dtype=torch.long)
        self.params = [p.detach().index_select(0, index).requires_grad_() for p in self.params]
        self.buffers = [b.index_select(0, index) for b in self.buffers]
        self.grads = [g.index_select(0, index) for g in self.grads]
        self.models = [self.models[k] for k in slots]
        self.dropouts = [self.dropouts[k] for k in slots]
        self.generators = [self.generators[k] for k in slots]
        self._bind()

    def _dropout(self, h: torch.Tensor) -> torch.Tensor:
        if not any(self.dropouts):
            return h
        mask = torch.empty(h.shape, device=h.device, dtype=h.dtype)
        for k, (p, generator) in enumerate(zip(self.dropouts, self.generators)):
            if p > 0:
                mask[k].bernoulli_(1 - p, generator=generator).div_(1 - p)
            else:
                mask[k].fill_(1)
        return h * mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Training-mode logits (K, B, classes) of every member for `x` (B, in) or (K, B, in)."""
        n_linear = self.n_linear
        h = x
        for i in range(n_linear):
            h = stacked_linear(h, self.params[2 * i], self.params[2 * i + 1])
            if i == n_linear - 1:
                return h
            if self.batchnorm:
                scale, shift = self.params[2 * n_linear + 2 * i], self.params[2 * n_linear + 2 * i + 1]
                h = stacked_batch_norm(h, scale, shift, *self.buffers[3 * i: 3 * i + 3])
            h = self._dropout(self.activation(h))
        return h

    def set_grads(self, grads) -> None:
        """Show freshly computed gradients through the members' `.grad` views: a contiguous one is
        used as it is (no copy), a strided one (from `baddbmm`) is copied into a contiguous buffer."""
        for i, grad in enumerate(grads):
            if grad.is_contiguous():
                self.grads[i] = grad
            else:
                self.grads[i].copy_(grad)
        for k, model in enumerate(self.models):
            for param, grad in zip(self._params_of(model), self.grads):
                param.grad = grad[k]
