# shapvision: every target creates .venv and installs the project on first use (and again when
# pyproject.toml changes), so `make demo` and `make test` work on a fresh clone.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_FLAGS ?=

.PHONY: install test test-slow test-notebooks test-slurm lint bench bench-gpu scale demo demo-clip clean vitshapley-digits compare-digits vitshapley-imagenette vitshapley-pets vitshapley-mura vitshapley-wbc \
	table-svo-faithfulness table-svo-segmentation table-svo-segmentation-imagenet-s table-svo-accuracy table-salvage table-salvage-accuracy table-vitshapley salvage-explainer-pets salvage-explainer-imagenette salvage-explainer-mura salvage-explainer-wbc simshap-cifar10 table-simshap \
	svo-vit-digits svo-ablation-digits svo-vit-imagenet svo-resnet-imagenet classifier-vit-imagenet classifier-resnet-imagenet fastshap-resnet-imagenet \
	svo-clip-cc3m clip-cc3m table-svo-retrieval table-svo-clip-insdel vitshapley-imagenet

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow and not slurm" $(PYTEST_FLAGS)

test-slow: $(STAMP)
	$(BIN)/python -m pytest -m "slow and not slurm" $(PYTEST_FLAGS)

# The notebooks, executed top to bottom (nbmake); each trains the tiny checkpoints it needs when the
# demo's runs are not there (notebooks/tiny_runs.py), so they run on a fresh clone.
test-notebooks: $(STAMP)
	$(BIN)/python -m pytest --nbmake --nbmake-timeout=900 -p no:cacheprovider notebooks/*.ipynb

# The SLURM scripts on a real Slurm: a controller and two slurmd "nodes" on this machine
# (tests/slurm_cluster.py), Debian's packages installed when missing (needs root). Run after
# `make test`: once slurm-client is installed, every Trainer outside SLURM warns that srun exists.
SLURM_PACKAGES := slurmctld slurmd slurm-client munge
test-slurm: $(STAMP)
	@for tool in slurmctld slurmd sbatch munged; do command -v $$tool >/dev/null || missing=1; done; \
	if [ -n "$$missing" ]; then \
		echo "installing $(SLURM_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SLURM_PACKAGES) >/dev/null; \
	fi
	SHAPVISION_REQUIRE_SLURM=1 timeout 900 $(BIN)/python -m pytest -m slurm $(PYTEST_FLAGS)

lint: $(STAMP)
	$(BIN)/ruff check shapvision shapvision_drivers tests benchmarks
	$(BIN)/ruff format --check shapvision shapvision_drivers tests benchmarks

# By default glibc gives large freed blocks back to the OS (mmap'd blocks, heap trimming) and the next
# step page-faults them in again; on this VM that adds up to 0.3x of a plain step to SVO's larger
# one, an artefact a GPU's caching allocator does not have. Keeping freed memory in the process
# times the computation itself; BENCHMARKS.md gives figures with both settings.
BENCH_ENV ?= MALLOC_MMAP_THRESHOLD_=33554432 MALLOC_TRIM_THRESHOLD_=68719476736

bench: $(STAMP)
	$(BIN)/python benchmarks/shapley_core.py
	$(BENCH_ENV) $(BIN)/python benchmarks/masked_forward.py
	$(BENCH_ENV) $(BIN)/python benchmarks/svo_step.py
	$(BENCH_ENV) $(BIN)/python benchmarks/insertion_deletion.py --backbone vit_small_patch16_224 --chunk 64 --repeats 1 --no-warmup
	$(BENCH_ENV) $(BIN)/python benchmarks/svo_clip_step.py
	$(BENCH_ENV) $(BIN)/python benchmarks/quantus_curves.py --images 2
	$(BENCH_ENV) $(BIN)/python benchmarks/clip_explainers.py
	$(BIN)/python benchmarks/shapiq_peer.py $(if $(wildcard runs/digits/surrogate/best.ckpt),--checkpoint runs/digits/surrogate/best.ckpt)
	$(BIN)/python benchmarks/shard_decoding.py

# On a GPU: every module's bf16 training step at its real size (images / s, MFU, peak memory), compile
# off and on, and the tables' evaluation throughput (benchmarks/gpu.py; --tiny runs it on the CPU).
bench-gpu: $(STAMP)
	$(BIN)/python benchmarks/gpu.py --device cuda $(BENCH_GPU_FLAGS)

# docs/scale.md: FLOPs and H100-hours of every training run and seeds' table (shapvision_drivers/scale.py)
scale: $(STAMP)
	$(BIN)/python -m shapvision_drivers.scale --jobs 2 --out docs/scale.md

SV := $(BIN)/shapvision
DIGITS := --config experiments/digits/trainer.yaml
# fit then test one stage: $(call stage,CONFIG,RUN_NAME)
define stage
	$(SV) fit $(DIGITS) --config experiments/digits/$(1).yaml
	$(SV) test $(DIGITS) --config experiments/digits/$(1).yaml --ckpt_path runs/digits/$(1)/best.ckpt
endef

# The main job: classifier -> surrogate -> explainer (fastshap) on digits, and the self-explaining
# SVO-ViT beside it, tested, with a report.
demo: $(STAMP)
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory vitshapley-digits svo-vit-digits && \
	$(BIN)/python -m shapvision_drivers.tables demo --out runs/demo && \
	$(BIN)/python -m shapvision_drivers.report --runs runs/digits --table runs/demo --out runs/demo --elapsed "$$(( $$(date +%s) - start )) s (training, testing and evaluation, CPU)"

# The embedded image-text demo: a tiny CLIP from scratch on digit scenes, SVO-CLIP fine-tuned from it,
# both evaluated (retrieval, caption explanations against the named digit, exact Shapley values).
SVC := $(BIN)/shapvision-clip
CLIP := --config experiments/digits_clip/trainer.yaml
demo-clip: $(STAMP)
	@start=$$(date +%s); \
	$(SVC) fit $(CLIP) --config experiments/digits_clip/clip.yaml && \
	$(SVC) fit $(CLIP) --config experiments/digits_clip/svo_clip.yaml && \
	$(BIN)/python -m shapvision_drivers.tables demo-clip --jobs 2 --out runs/demo_clip && \
	echo "demo-clip: $$(( $$(date +%s) - start )) s; report: runs/demo_clip/table.md"

vitshapley-digits: $(STAMP)
	$(call stage,classifier)
	$(call stage,surrogate)
	$(call stage,explainer_fastshap)

# SVO-ViT on digits: the classifier's backbone and schedule, CE + lambda * Shapley loss, tested against
# exact Shapley values of its own value function.
svo-vit-digits: $(STAMP)
	$(call stage,svo_vit)

# Ablation on digits: lambda = 0 (plain CE with the voting head) and every lambda in SVO_LAMBDAS x
# stop_gradient in SVO_STOPS, CLS dropped (the paper's design), and lambda 1 with CLS kept; accuracy
# vs Shapley accuracy, table in docs/svo_ablation.md.
SVO_LAMBDAS ?= 0.1 1 10
SVO_STOPS ?= none masked full
SVO_ABLATION := --config experiments/digits/svo_vit.yaml --trainer.enable_progress_bar false
SVO_ABLATION_EVAL := --config experiments/digits/demo_svo.yaml --model.init_args.methods [svo] --model.init_args.method_options {} --trainer.enable_progress_bar false
svo-ablation-digits: $(STAMP)
	@set -e; for run in 0:none:null $(foreach l,$(SVO_LAMBDAS),$(foreach s,$(SVO_STOPS),$(l):$(s):null)) 1:none:false; do \
	  lambda=$${run%%:*}; rest=$${run#*:}; stop=$${rest%%:*}; drop=$${rest##*:}; \
	  name=svo_ablation/lambda_$${lambda}_$${stop}$$( [ $$drop = false ] && echo _cls_kept ); \
	  opts="$(SVO_ABLATION) --model.init_args.shapley_weight $$lambda --model.init_args.stop_gradient $$stop --model.init_args.drop_cls_token $$drop --trainer.logger.init_args.name $$name --trainer.callbacks.init_args.dirpath runs/digits/$$name"; \
	  echo "== $$name"; \
	  $(SV) fit $(DIGITS) $$opts; \
	  $(SV) test $(DIGITS) $$opts --ckpt_path runs/digits/$$name/best.ckpt; \
	  $(SV) test $(DIGITS) $(SVO_ABLATION_EVAL) --model.init_args.checkpoint runs/digits/$$name/best.ckpt --trainer.logger.init_args.save_dir runs/digits/$$name --trainer.logger.init_args.name evaluation --trainer.logger.init_args.version ""; \
	done
	$(BIN)/python -m shapvision_drivers.svo_ablation --runs runs/digits/svo_ablation --out docs/svo_ablation.md

# Trained digits checkpoints as file targets: `make compare-digits` after `make demo` reuses them and
# trains only what is missing (or older than the stage it is built from).
runs/digits/%/best.ckpt: | $(STAMP)
	$(call stage,$*)
runs/digits/surrogate/best.ckpt: runs/digits/classifier/best.ckpt
runs/digits/explainer_fastshap/best.ckpt runs/digits/explainer_simshap/best.ckpt runs/digits/explainer_salvage/best.ckpt: runs/digits/surrogate/best.ckpt
DIGITS_CHECKPOINTS := $(foreach s,explainer_fastshap explainer_simshap explainer_salvage svo_vit,runs/digits/$(s)/best.ckpt)

# The full digits table: every method x every metric, for the surrogate (explained by the three
# trained explainers and every post-hoc baseline) and for SVO-ViT; ink masks for localisation.
TABLES := $(BIN)/python -m shapvision_drivers.tables
compare-digits: $(DIGITS_CHECKPOINTS)
	$(TABLES) compare-digits --out runs/compare-digits

# The seeds' tables at full size (GPU) from trained runs under CKPTS (default runs/imagenet, or the
# folder holding pets/ imagenette/ mura/ wbc/ runs) and datasets under DATA; ARGS go to every `shapvision test`.
CKPTS ?= runs/imagenet
define table
	@test -n "$(DATA)" || { echo "usage: make $@ DATA=/path/to/datasets [CKPTS=runs/...] [ARGS='--trainer.devices 8']"; exit 2; }
	$(TABLES) $(1) --data $(DATA) --checkpoints $(CKPTS) $(if $(WEIGHTS),--weights $(WEIGHTS)) -- $(ARGS)
endef
table-svo-faithfulness: $(STAMP)
	$(call table,svo-faithfulness)
table-svo-segmentation: $(STAMP)
	$(call table,svo-segmentation)
table-svo-segmentation-imagenet-s: $(STAMP)
	$(call table,svo-segmentation-imagenet-s)
table-salvage: $(STAMP)
	$(call table,salvage)
table-salvage-accuracy: $(STAMP)
	$(call table,salvage-accuracy)
table-vitshapley: $(STAMP)
	$(call table,vitshapley)

# SVO Table 1: accuracy (shapvision test of each checkpoint under CKPTS), parameters and FLOPs per image
# (torch.utils.flop_counter at the checkpoint's img_size), plain vs SVO for ViT-B/16, ResNet-50 and the
# EVA02-B-16 image tower (CLIP / SVO-CLIP runs: CKPTS holds clip/ and svo_clip/ too). Missing runs say so.
table-svo-accuracy: $(STAMP)
	@test -n "$(DATA)" || { echo "usage: make $@ DATA=/path/to/datasets [CKPTS=runs/imagenet] [ARGS='--trainer.devices 8']"; exit 2; }
	$(BIN)/python -m shapvision_drivers.svo_accuracy --data $(DATA) --checkpoints $(CKPTS) -- $(ARGS)

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

vitshapley-mura: $(STAMP)
	$(call folder_pipeline,mura)

vitshapley-wbc: $(STAMP)
	$(call folder_pipeline,wbc)

# The SimSHAP table's pipeline (GPU): CIFAR-10 at 224, ViT-B/16 classifier -> surrogate -> FastSHAP and
# SimSHAP explainers, each fit then tested; then make table-simshap DATA=<folder holding cifar10/> CKPTS=runs.
#   make simshap-cifar10 DATA=/data/cifar10 WEIGHTS=/models/vit_base_patch16_224.safetensors
define cifar10_stage
	$(SV) fit --config experiments/cifar10/trainer.yaml --config experiments/cifar10/$(1).yaml --data.init_args.root $(DATA) $(2)
	$(SV) test --config experiments/cifar10/trainer.yaml --config experiments/cifar10/$(1).yaml --data.init_args.root $(DATA) --ckpt_path runs/cifar10/$(1)/best.ckpt $(3)
endef
simshap-cifar10: $(STAMP)
	@test -n "$(DATA)" -a -n "$(WEIGHTS)" || { echo "usage: make $@ DATA=/path/to/cifar10 WEIGHTS=/path/to/vit_base_patch16_224 weights"; exit 2; }
	$(call cifar10_stage,classifier,--model.init_args.pretrained $(WEIGHTS),--model.init_args.pretrained false)
	$(call cifar10_stage,surrogate)
	$(call cifar10_stage,explainer_fastshap)
	$(call cifar10_stage,explainer_simshap)
table-simshap: $(STAMP)
	$(call table,simshap)

# The Salvage explainer on a pipeline's surrogate (for `make table-salvage`): make salvage-explainer-pets DATA=...
define salvage_explainer
	@test -n "$(DATA)" || { echo "usage: make $@ DATA=/path/to/dataset (after make vitshapley-$(1))"; exit 2; }
	$(SV) fit --config experiments/$(1)/trainer.yaml --config experiments/$(1)/explainer_salvage.yaml --data.init_args.root $(DATA)
endef
salvage-explainer-pets: $(STAMP)
	$(call salvage_explainer,pets)
salvage-explainer-imagenette: $(STAMP)
	$(call salvage_explainer,imagenette)
salvage-explainer-mura: $(STAMP)
	$(call salvage_explainer,mura)
salvage-explainer-wbc: $(STAMP)
	$(call salvage_explainer,wbc)

# SVO on ImageNet (GPU), each run fit then test on val/; the plain classifiers are the accuracy baselines:
#   make svo-vit-imagenet DATA=/data/imagenet WEIGHTS=/models/vit_base_patch16_224.safetensors
#   make svo-resnet-imagenet DATA=/data/imagenet WEIGHTS=/models/resnet50.safetensors
# Extra CLI options (e.g. ARGS="--trainer.num_nodes 2 --model.init_args.shapley_weight 0.5") are appended.
define imagenet_run
	@test -n "$(DATA)" -a -n "$(WEIGHTS)" || { echo "usage: make $@ DATA=/path/to/imagenet WEIGHTS=/path/to/timm weights [ARGS=...]"; exit 2; }
	$(SV) fit --config experiments/imagenet/trainer.yaml --config experiments/imagenet/$(1).yaml --data.init_args.root $(DATA) --model.init_args.pretrained $(WEIGHTS) $(ARGS)
	$(SV) test --config experiments/imagenet/trainer.yaml --config experiments/imagenet/$(1).yaml --data.init_args.root $(DATA) --model.init_args.pretrained false $(ARGS) --ckpt_path runs/imagenet/$(1)/best.ckpt
endef

svo-vit-imagenet: $(STAMP)
	$(call imagenet_run,svo_vit)

svo-resnet-imagenet: $(STAMP)
	$(call imagenet_run,svo_resnet)

classifier-vit-imagenet: $(STAMP)
	$(call imagenet_run,classifier_vit)

classifier-resnet-imagenet: $(STAMP)
	$(call imagenet_run,classifier_resnet)

# SVO-CLIP and its plain-CLIP baseline fine-tuned on CC3M from local EVA02-B-16 weights (GPU):
#   make svo-clip-cc3m DATA=/data (holding cc3m/train and cc3m/val shards) WEIGHTS=/models/EVA02-B-16.bin
define cc3m_run
	@test -n "$(DATA)" -a -n "$(WEIGHTS)" || { echo "usage: make $@ DATA=/path/holding/cc3m WEIGHTS=/path/to/EVA02-B-16 open_clip weights [ARGS=...]"; exit 2; }
	SHAPVISION_DATA=$(DATA) $(SVC) fit --config experiments/cc3m/trainer.yaml --config experiments/cc3m/$(1).yaml --model.init_args.pretrained $(WEIGHTS) $(ARGS)
endef

svo-clip-cc3m: $(STAMP)
	$(call cc3m_run,svo_clip)

clip-cc3m: $(STAMP)
	$(call cc3m_run,clip)

table-svo-retrieval: $(STAMP)
	$(call table,svo-retrieval)
table-svo-clip-insdel: $(STAMP)
	$(call table,svo-clip-insdel)

# The FastSHAP row of SVO Tables 2-3 on ResNet-50: surrogate then explainer, after classifier-resnet-imagenet.
define imagenet_stage
	@test -n "$(DATA)" || { echo "usage: make $@ DATA=/path/to/imagenet [ARGS=...]"; exit 2; }
	$(SV) fit --config experiments/imagenet/trainer.yaml --config experiments/imagenet/$(1).yaml --data.init_args.root $(DATA) $(ARGS)
	$(SV) test --config experiments/imagenet/trainer.yaml --config experiments/imagenet/$(1).yaml --data.init_args.root $(DATA) $(ARGS) --ckpt_path runs/imagenet/$(1)/best.ckpt
endef

fastshap-resnet-imagenet: $(STAMP)
	$(call imagenet_stage,surrogate_resnet)
	$(call imagenet_stage,explainer_resnet)

# The ViTShapley row of SVO Tables 2-3 on ViT-B/16: surrogate then explainer, after classifier-vit-imagenet.
vitshapley-imagenet: $(STAMP)
	$(call imagenet_stage,surrogate_vit)
	$(call imagenet_stage,explainer_vit)
