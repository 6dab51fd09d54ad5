"""Train matched pairs of backbones offline: the same architecture trained once normally and once
adversarially (``paramviz train``, ``paramviz train-pairs``).

Everything is reproducible from ``TrainConfig.seed``: the dataset crops, the initial weights, the
data order and the attack's random starts. The result is a converted ``.safetensors`` file that
:func:`paramviz.backbones.load` reads, so every command that takes ``--weights`` takes it.

Choices, and why:

* **Batch norm as a fixed affine.** The backbones are inference modules (eval-mode batch norm,
  ``batch_stats`` = running mean / variance). Training only updates ``params``; the statistics stay
  as initialised (mean 0, variance 1, checked), so each batch norm is a learned per-channel scale
  and shift and the saved file runs exactly as trained. Without batch statistics a deep net needs
  careful initialisation: conv kernels and hidden dense kernels get He-normal initialisation
  (variance 2 / fan-in, which keeps ReLU activations at a constant scale), and the last batch norm
  of every residual block starts with scale 0, so each block starts as the identity (Fixup, Zhang
  et al. 2019; "zero-γ", Goyal et al. 2017). The VGG is the plain ``vgg16`` (no batch norm).
* **Small inputs.** The nets run at the dataset's size (32×32 textures; Fashion-MNIST 28×28, or
  zero-padded to ``image_size``). VGG's five pools take 32 px to 1 px; its adaptive average pool
  then repeats that pixel 7×7 times as torchvision does, so ``fc6`` keeps its real shape
  (512·w·49 inputs): at width 1/8 that is 3136 → 512, 1.6 M of the net's 2.2 M parameters, but
  cheap to run. VGG cannot run below 32 px.
* **Architectures and widths (measured on 2 CPU cores).** The ResNet-18 at width 1/8 is the
  main vehicle: its stride-4 stem makes it 4× cheaper per image than the VGG, and it reached
  76 % on the textures in 10 epochs (1 min) where VGG-16 at width 1/16 reached 47 %. Width 1/4
  gives 85 % but costs 2.5× (standard) to 3× (PGD) as much, too much for the 30-minute budget
  with the attacks. The VGG-16 is trained at width 1/8: below that its 4-channel first block
  starves it (47 %), and at these channel counts 1/8 runs as fast as 1/16.
* **Input convention.** Images are [0, 1]; the module's ``mean``/``std`` are the training set's
  per-channel statistics, stored in the file's ``input_convention`` like any converted net.
* **One compiled step.** Forward, the attack's inner loop (``lax.fori_loop``, unrolled: see
  :data:`paramviz.experiments.attacks.MAX_UNROLLED_STEPS`), backward and the optax update are a
  single
  ``jax.jit`` function; the host syncs only to refresh the progress bar and at checkpoints.
* **ε warm-up** for adversarial training (``TrainConfig.eps_warmup``; see there).
* **Checkpoints.** Every ``checkpoint_every`` steps (and on Ctrl-C) two files are written
  atomically: the weights (``NAME.safetensors``, usable at once) and the training state
  (``NAME.train-state``: parameters, optimiser state, step, attack key, free-training
  perturbation, data-order seed, wall time, and the config). Running the same command again
  resumes exactly where the state left off; the state file is removed when training completes.

Modules: :mod:`.config` (what determines the weights), :mod:`.model` (data and the untrained
network), :mod:`.loop` (training, checkpoints, resume), :mod:`.evaluation` (clean and robust
accuracy), :mod:`.pairs` (the default pairs and the demo network). Measured accuracies and times
are in ``experiments/README.md``.
"""

from paramviz.experiments.train.config import TrainConfig, describe_training
from paramviz.experiments.train.evaluation import Evaluation, evaluate
from paramviz.experiments.train.loop import TrainReport, finished_report, fit, state_path, train
from paramviz.experiments.train.model import build_backbone, channel_stats, load_data, with_params
from paramviz.experiments.train.pairs import (
    DEFAULT_PAIRS,
    PAIRS,
    TESTBED_PAIRS,
    train_pairs,
)

__all__ = [
    "DEFAULT_PAIRS",
    "PAIRS",
    "TESTBED_PAIRS",
    "Evaluation",
    "TrainConfig",
    "TrainReport",
    "build_backbone",
    "channel_stats",
    "describe_training",
    "evaluate",
    "finished_report",
    "fit",
    "load_data",
    "state_path",
    "train",
    "train_pairs",
    "with_params",
]
