# shapvision: every target creates .venv and installs the project on first use (and again when
# pyproject.toml changes), so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?=

.PHONY: install test test-slow lint bench demo clean vitshapley-digits compare-digits vitshapley-imagenette vitshapley-pets

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_FLAGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow $(PYTEST_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check shapvision tests benchmarks
	$(BIN)/ruff format --check shapvision tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/shapley_core.py
	$(BIN)/python benchmarks/masked_forward.py

SV := $(BIN)/shapvision
DIGITS := --config experiments/digits/trainer.yaml
# fit then test one stage: $(call stage,CONFIG,RUN_NAME)
define stage
	$(SV) fit $(DIGITS) --config experiments/digits/$(1).yaml
	$(SV) test $(DIGITS) --config experiments/digits/$(1).yaml --ckpt_path runs/digits/$(1)/best.ckpt
endef

# The main job: classifier -> surrogate -> explainer (fastshap) on digits, tested, with a report.
demo: $(STAMP)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory vitshapley-digits && \
	$(BIN)/python -m shapvision.report --runs runs/digits --out runs/demo --elapsed "$$(( $$(date +%s) - start )) s (training and testing, CPU)"

vitshapley-digits: $(STAMP)
	$(call stage,classifier)
	$(call stage,surrogate)
	$(call stage,explainer_fastshap)

# All three objectives on the same surrogate, one comparison table (no time target).
compare-digits: vitshapley-digits
	$(call stage,explainer_simshap)
	$(call stage,explainer_salvage)
	$(BIN)/python -m shapvision.report --runs runs/digits --out runs/compare-digits --explainers explainer_fastshap explainer_simshap explainer_salvage

clean:
	rm -rf $(VENV) runs lightning_logs .pytest_cache

# ViT-Shapley at 224 on a local ImageFolder dataset with the paper's hyperparameters (GPU):
#   make vitshapley-imagenette DATA=/data/imagenette2 WEIGHTS=/models/vit_base_patch16_224.safetensors
define folder_pipeline
	@test -n "$(DATA)" -a -n "$(WEIGHTS)" || { echo "usage: make $@ DATA=/path/to/imagefolder WEIGHTS=/path/to/vit_base_patch16_224 weights"; exit 2; }
	$(SV) fit --config experiments/$(1)/trainer.yaml --config experiments/$(1)/classifier.yaml --data.init_args.root $(DATA) --model.init_args.pretrained $(WEIGHTS)
	$(SV) test --config experiments/$(1)/trainer.yaml --config experiments/$(1)/classifier.yaml --data.init_args.root $(DATA) --model.init_args.pretrained false --ckpt_path runs/$(1)/classifier/best.ckpt
	$(SV) fit --config experiments/$(1)/trainer.yaml --config experiments/$(1)/surrogate.yaml --data.init_args.root $(DATA)
	$(SV) test --config experiments/$(1)/trainer.yaml --config experiments/$(1)/surrogate.yaml --data.init_args.root $(DATA) --ckpt_path runs/$(1)/surrogate/best.ckpt
	$(SV) fit --config experiments/$(1)/trainer.yaml --config experiments/$(1)/explainer.yaml --data.init_args.root $(DATA)
	$(SV) test --config experiments/$(1)/trainer.yaml --config experiments/$(1)/explainer.yaml --data.init_args.root $(DATA) --ckpt_path runs/$(1)/explainer/best.ckpt
endef

vitshapley-imagenette: $(STAMP)
	$(call folder_pipeline,imagenette)

vitshapley-pets: $(STAMP)
	$(call folder_pipeline,pets)
