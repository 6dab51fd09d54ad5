# Reproducible matched pairs of backbones, trained offline (no downloads).
# Weights are cached under $PARAMVIZ_HOME/trained (default ~/.cache/paramviz/trained); a run
# that is interrupted resumes from its last checkpoint when started again.

PYTHON ?= python
PARAMVIZ ?= $(PYTHON) -m paramviz.cli

.PHONY: pairs train-pairs demo-backbone test-training

# Standard + PGD-trained ResNet-18- and VGG-16-style nets on the texture set, and a
# ResNet-18-style pair on Fashion-MNIST; prints clean and PGD-robust accuracy.
pairs train-pairs:
	$(PARAMVIZ) train-pairs

# The small robust texture backbone that `paramviz demo` uses (trained once, then cached).
demo-backbone:
	$(PYTHON) -c "from experiments.train import ensure_demo_backbone; print(ensure_demo_backbone())"

test-training:
	$(PYTHON) -m pytest tests/test_attacks.py tests/test_train.py
