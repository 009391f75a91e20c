"""airbench94_muon's optimizer in Keras: Muon on the convolution filters, Nesterov SGD on
the rest, each group with its own learning rate, as the recipe sets them.

    optimizer = AirbenchMuon(total_steps=8 * 25, whiten_steps=3 * 25, gradient_scale=2000)

Why not ``keras.optimizers.Muon`` (Keras 3.15): it differs from the recipe in five ways,
each checked against its source (``keras/src/optimizers/muon.py``):
1. it orthogonalises 2-D variables only: a conv kernel (4-D) gets its AdamW step, while the
   recipe's Muon is *for* the conv filters (reshaped to out-channels x the rest);
2. the rest gets AdamW, where the recipe has SGD with Nesterov momentum 0.85 and separate
   learning rates for the BatchNorm biases and whitening bias (0.053) and the head (0.67);
3. it does not re-normalise the weights: the recipe scales each filter tensor to
   Frobenius norm sqrt(out channels) before every step;
4. it scales the update by ``sqrt(max(rows, cols)) * rms_rate`` (Moonlight) unless
   ``rms_rate=None``; the recipe does not;
5. its defaults are 5 Newton-Schulz steps and momentum 0.95 with decoupled weight decay on
   the Muon variables; the recipe: 3 steps, momentum 0.6, no weight decay on the filters.
The Newton-Schulz iteration itself (coefficients 3.4445, -4.7750, 2.0315; normalise by
the Frobenius norm + 1e-7; transpose when rows > columns) and the Nesterov momentum
(``buf = momentum * buf + g``; the step uses ``g + momentum * buf``) are the same. The
recipe runs the iteration in bfloat16 on a GPU; here it runs in the variables' float32.
``tests/test_muon.py`` checks one step against a NumPy transcription of the recipe.

Learning rates follow the recipe's schedule: every group decays linearly from its rate to 0
over ``total_steps``; the whitening bias over ``whiten_steps``. The recipe sums the loss
over the batch; Keras averages it, so SGD gradients are multiplied by ``gradient_scale``
(the batch size) to keep the recipe's rates (Muon's step does not depend on the scale).
SGD's weight decay is PyTorch's coupled one, ``wd / lr`` per group, through the momentum.
"""

from __future__ import annotations

import re

import keras
from keras import ops

NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def newton_schulz(x, steps: int = 3, coefficients=NS_COEFFICIENTS, eps: float = 1e-7):
    """The recipe's quintic Newton-Schulz iteration on a 2-D matrix: roughly U V^T of its SVD."""
    a, b, c = coefficients
    tall = x.shape[0] > x.shape[1]
    if tall:
        x = ops.transpose(x)
    x = x / (ops.sqrt(ops.sum(ops.square(x))) + eps)
    for _ in range(steps):
        gram = ops.matmul(x, ops.transpose(x))
        x = a * x + ops.matmul(b * gram + c * ops.matmul(gram, gram), x)
    return ops.transpose(x) if tall else x


@keras.saving.register_keras_serializable(package="cifar_core")
class AirbenchMuon(keras.optimizers.Optimizer):
    """Muon for 4-D conv kernels, Nesterov SGD for every other trainable variable.

    Groups by variable path: a path matching ``head`` is the head (``head_lr``), one
    matching ``whiten_bias`` is the whitening bias (``bias_lr``, its own schedule over
    ``whiten_steps``), any other non-kernel variable (BatchNorm shifts) gets ``bias_lr``.
    """

    def __init__(
        self,
        total_steps: int,
        whiten_steps: int | None = None,
        muon_lr: float = 0.24,
        muon_momentum: float = 0.6,
        ns_steps: int = 3,
        bias_lr: float = 0.053,
        head_lr: float = 0.67,
        sgd_momentum: float = 0.85,
        weight_decay: float = 2e-6 * 2000,
        gradient_scale: float = 2000.0,
        head: str = r"(^|/)head/",
        whiten_bias: str = r"(^|/)whiten_bias/",
        name: str = "airbench_muon",
        **kwargs,
    ):
        kwargs.pop("learning_rate", None)
        # The base class' rate is Muon's own decaying rate: what training logs show as the LR.
        schedule = keras.optimizers.schedules.PolynomialDecay(float(muon_lr), int(total_steps), 0.0)
        super().__init__(learning_rate=schedule, name=name, **kwargs)
        self.total_steps = int(total_steps)
        self.whiten_steps = int(whiten_steps or total_steps)
        self.muon_lr, self.muon_momentum, self.ns_steps = float(muon_lr), float(muon_momentum), int(ns_steps)
        self.bias_lr, self.head_lr, self.sgd_momentum = float(bias_lr), float(head_lr), float(sgd_momentum)
        self.wd, self.gradient_scale = float(weight_decay), float(gradient_scale)
        self.head, self.whiten_bias = head, whiten_bias

    def group(self, variable) -> str:
        """ "muon", "head", "whiten_bias" or "bias" (what the variable is trained by)."""
        if len(variable.shape) == 4:
            return "muon"
        if re.search(self.head, variable.path):
            return "head"
        if re.search(self.whiten_bias, variable.path):
            return "whiten_bias"
        return "bias"

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self.buffers = [self.add_variable_from_reference(v, name="momentum") for v in var_list]
        self.groups = [self.group(v) for v in var_list]  # update_step sees backend variables

    def _factor(self, steps: int):
        step = ops.cast(self.iterations, "float32")
        return ops.maximum(1.0 - step / float(steps), 0.0)

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        buf, kind = self.buffers[index], self.groups[index]
        gradient = ops.cast(gradient, variable.dtype)
        if kind == "muon":
            lr = learning_rate  # the base class' schedule: Muon's rate, decaying linearly to 0
            self.assign(buf, self.muon_momentum * buf + gradient)
            g = gradient + self.muon_momentum * buf
            # Keras kernels are (kh, kw, in, out); the recipe's rows are the out channels.
            out = variable.shape[-1]
            matrix = ops.transpose(ops.reshape(g, (-1, out)))
            update = ops.reshape(ops.transpose(newton_schulz(matrix, self.ns_steps)), variable.shape)
            norm = ops.sqrt(ops.sum(ops.square(variable)))
            self.assign(variable, variable * (out**0.5 / norm) - lr * update)
            return
        base = {"head": self.head_lr, "bias": self.bias_lr, "whiten_bias": self.bias_lr}[kind]
        steps = self.whiten_steps if kind == "whiten_bias" else self.total_steps
        lr = base * self._factor(steps)
        d = gradient * self.gradient_scale + (self.wd / base) * variable
        self.assign(buf, self.sgd_momentum * buf + d)
        self.assign_sub(variable, lr * (d + self.sgd_momentum * buf))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "total_steps": self.total_steps,
                "whiten_steps": self.whiten_steps,
                "muon_lr": self.muon_lr,
                "muon_momentum": self.muon_momentum,
                "ns_steps": self.ns_steps,
                "bias_lr": self.bias_lr,
                "head_lr": self.head_lr,
                "sgd_momentum": self.sgd_momentum,
                "weight_decay": self.wd,
                "gradient_scale": self.gradient_scale,
                "head": self.head,
                "whiten_bias": self.whiten_bias,
            }
        )
        config.pop("learning_rate", None)
        return config
