"""The one default config tree. Every key a component reads is declared here.

Projects add their own keys with ``add_*_config(cfg)`` functions, as in detectron2.
"""

from .config import CfgNode as CN

_C = CN()
_C.VERSION = 1
# Project packages to import before the config is merged (see ssl_lab/config/imports.py),
# e.g. ("projects/EqCo/eqco", "projects/SiMo/simo").
_C.IMPORTS = ()

# Directory for config.yaml, log.txt, metrics.json, checkpoints and TensorBoard events.
_C.OUTPUT_DIR = "./output"
# Negative: seed from time and pid. Each rank adds its rank to the seed.
_C.SEED = -1
# Deterministic kernels and data order: same seed, same metrics.
_C.CUDNN_DETERMINISTIC = False
_C.CUDNN_BENCHMARK = False
# Freed host memory (MB) glibc malloc keeps for reuse instead of returning it to the OS; 0 keeps
# malloc's defaults. Without it, every fresh temporary of a chain of small tensor ops (the batched
# augmentation on the CPU) page-faults on first touch. See ssl_lab.utils.host_memory.
_C.HOST_MEMORY_CACHE_MB = 1024

# ---------------------------------------------------------------------------- #
# Model
# ---------------------------------------------------------------------------- #
_C.MODEL = CN()
_C.MODEL.META_ARCHITECTURE = "MoCo"
# "auto": cuda if available, else cpu.
_C.MODEL.DEVICE = "auto"
# Checkpoint loaded before training/evaluation (path, URL or ssl_lab://name).
_C.MODEL.WEIGHTS = ""
# False: a tensor of MODEL.WEIGHTS whose shape differs from the model's (e.g. a wider projector)
# refuses the load, naming it. True: such head tensors keep their initialization; the backbone
# must fit either way.
_C.MODEL.WEIGHTS_ALLOW_PARTIAL = False

_C.MODEL.BACKBONE = CN()
_C.MODEL.BACKBONE.NAME = "ResNet"
_C.MODEL.BACKBONE.DEPTH = 50
# Width multiplier of torchvision's ResNet (1, 2, 4 for R50w2x / w4x).
_C.MODEL.BACKBONE.WIDTH_MULTIPLIER = 1
# Channels of the stem and the first stage (64 in every published ResNet); smaller values make a
# narrow ResNet for CPU-sized experiments (32: a quarter of the multiply-adds).
_C.MODEL.BACKBONE.BASE_CHANNELS = 64
# 3x3 stride-1 stem without max-pool, for 32-96 px inputs.
_C.MODEL.BACKBONE.SMALL_STEM = False
# "BN", "SyncBN" (all-reduce based, works on CPU/gloo) or "FrozenBN"-free plain BN.
_C.MODEL.BACKBONE.NORM = "BN"
_C.MODEL.BACKBONE.ZERO_INIT_RESIDUAL = False

# Projector g(.) on top of the backbone (MoCo v1 uses a single linear layer).
_C.MODEL.PROJECTOR = CN()
_C.MODEL.PROJECTOR.NAME = "MLPHead"
_C.MODEL.PROJECTOR.NUM_LAYERS = 2
_C.MODEL.PROJECTOR.HIDDEN_DIM = 2048
_C.MODEL.PROJECTOR.OUT_DIM = 128
# BN after each hidden linear layer, and after the last one.
_C.MODEL.PROJECTOR.HIDDEN_BN = False
_C.MODEL.PROJECTOR.LAST_BN = False
# Learnable shift (beta) of that last BN; SimCLR's head has none (center=False).
_C.MODEL.PROJECTOR.LAST_BN_SHIFT = True
_C.MODEL.PROJECTOR.NORM = "BN"

# Predictor q(.) of BYOL-style methods.
_C.MODEL.PREDICTOR = CN()
_C.MODEL.PREDICTOR.NAME = "MLPHead"
_C.MODEL.PREDICTOR.NUM_LAYERS = 2
_C.MODEL.PREDICTOR.HIDDEN_DIM = 4096
_C.MODEL.PREDICTOR.OUT_DIM = 256
_C.MODEL.PREDICTOR.HIDDEN_BN = True
_C.MODEL.PREDICTOR.LAST_BN = False
_C.MODEL.PREDICTOR.LAST_BN_SHIFT = True
_C.MODEL.PREDICTOR.NORM = "BN"

_C.MODEL.LOSS = CN()
_C.MODEL.LOSS.NAME = "InfoNCELoss"
_C.MODEL.LOSS.TEMPERATURE = 0.2

_C.MODEL.QUEUE = CN()
# "" disables the memory bank.
_C.MODEL.QUEUE.NAME = "MoCoQueue"
_C.MODEL.QUEUE.SIZE = 65536

_C.MODEL.NEGATIVE_SAMPLER = CN()
# "AllNegatives" keeps every negative; "RandomNegatives" draws NUM_NEGATIVES.
_C.MODEL.NEGATIVE_SAMPLER.NAME = "AllNegatives"
_C.MODEL.NEGATIVE_SAMPLER.NUM_NEGATIVES = 0
# Random subset shared by all queries of a step (True) or drawn per query (False).
_C.MODEL.NEGATIVE_SAMPLER.SHARED = True

# Momentum (EMA) key/target encoder.
_C.MODEL.MOMENTUM = CN()
_C.MODEL.MOMENTUM.BASE = 0.999
# BYOL: momentum follows 1 - (1 - BASE) * (cos(pi * t / T) + 1) / 2.
_C.MODEL.MOMENTUM.COSINE = False

# Linear evaluation (LinearClassifier): a linear layer on the frozen backbone.
_C.MODEL.CLASSIFIER = CN()
_C.MODEL.CLASSIFIER.NUM_CLASSES = 1000
_C.MODEL.CLASSIFIER.INIT_STD = 0.01

_C.MODEL.MOCO = CN()
_C.MODEL.MOCO.SHUFFLE_BN = True

# ---------------------------------------------------------------------------- #
# Input / augmentation
# ---------------------------------------------------------------------------- #
_C.INPUT = CN()
# Multi-view recipe in the transform registry: MoCoV1, MoCoV2, SimCLR, BYOL, LinearEval.
_C.INPUT.AUGMENTATION = "MoCoV2"
_C.INPUT.NUM_VIEWS = 2
_C.INPUT.CROP_SIZE = 224
_C.INPUT.CROP_SCALE = (0.2, 1.0)
# Evaluation: resize the short side to RESIZE, center-crop CROP_SIZE.
_C.INPUT.TEST_RESIZE = 256
_C.INPUT.PIXEL_MEAN = (0.485, 0.456, 0.406)
_C.INPUT.PIXEL_STD = (0.229, 0.224, 0.225)
# True: the loader ships uint8 squares and the recipe runs batched on the model's device
# (ssl_lab.data.batched_augment), so CPU workers only decode; see its docstring for how it differs
# from the per-image PIL path.
_C.INPUT.BATCHED_AUGMENTATION = False
# Side of those squares (short side resized to it, centre square), the canvas the random crops
# are cut from; 0: INPUT.CROP_SIZE. Larger keeps more detail for small crops, at a cost per pixel.
_C.INPUT.BATCHED_AUGMENTATION_SIZE = 0
# Earlier names of these two keys: a config that uses one is refused with a message naming the key above.
_C.register_renamed_key("INPUT.GPU_AUGMENTATION", "INPUT.BATCHED_AUGMENTATION")
_C.register_renamed_key("INPUT.GPU_AUGMENTATION_SIZE", "INPUT.BATCHED_AUGMENTATION_SIZE")
# Without BATCHED_AUGMENTATION: the loader workers ship each view as uint8 (3, H, W), a quarter of the
# bytes of float32, and the trainer normalizes the views on the model's device with the same
# arithmetic (the same values); False: the workers ship normalized float32 views. Views of a recipe
# that does not end in ssl_lab's normalization are shipped and used as the recipe makes them.
_C.INPUT.NORMALIZE_ON_DEVICE = True
# Decode JPEGs at 1/2, 1/4 or 1/8 size (libjpeg DCT scaling) where every crop cut from the image
# keeps at least the output size (ssl_lab.data.decode); the crop boxes are drawn from the full-size
# image, as RandomResizedCrop draws them.
_C.INPUT.REDUCED_DECODE = True
# With BATCHED_AUGMENTATION: the loader ships encoded JPEG bytes, decoded on the model's device
# (nvJPEG on CUDA) before the batched recipe.
_C.INPUT.GPU_DECODE = False

# Multi-crop (SwAV, DINO): after the INPUT.NUM_VIEWS global views (INPUT.CROP_SIZE px from
# INPUT.CROP_SCALE of the image), NUM_LOCAL local crops of LOCAL_SIZE px from LOCAL_SCALE, each the
# recipe's view with that crop (local crop i is view i of the recipe's cycle, as global view i).
# 0: none. Methods declare how they pair crops (CROP_PAIRING); those with "global-local" use the
# local crops as extra queries against the targets/keys of the global views. Defaults: SwAV's
# 96 px crops from 5-14 % of the image (facebookresearch/swav main_swav.py).
_C.INPUT.MULTI_CROP = CN()
_C.INPUT.MULTI_CROP.NUM_LOCAL = 0
_C.INPUT.MULTI_CROP.LOCAL_SIZE = 96
_C.INPUT.MULTI_CROP.LOCAL_SCALE = (0.05, 0.14)

# ---------------------------------------------------------------------------- #
# Datasets: names are "<family>_<split>", e.g. imagenet_train, cifar10_test, shapes_val.
# ---------------------------------------------------------------------------- #
_C.DATASETS = CN()
_C.DATASETS.TRAIN = ("imagenet_train",)
# Labelled split used as kNN queries (and linear-eval test set).
_C.DATASETS.TEST = ("imagenet_val",)
# Root of all datasets; $SSL_LAB_DATASETS overrides it when this is empty.
_C.DATASETS.ROOT = ""
# What to do with an image that cannot be decoded: "error" or "skip".
_C.DATASETS.ON_BAD_IMAGE = "error"
# Class-per-folder trees (imagenet, imagefolder): list the files once into a cached index
# (<$SSL_LAB_CACHE or ~/.cache/ssl_lab>/file_index), rebuilt when a folder of the tree changes.
_C.DATASETS.FILE_INDEX = True

_C.DATASETS.SHAPES = CN()
_C.DATASETS.SHAPES.IMAGE_SIZE = 64
_C.DATASETS.SHAPES.NUM_TRAIN = 4000
_C.DATASETS.SHAPES.NUM_VAL = 1000
_C.DATASETS.SHAPES.SEED = 0

_C.DATALOADER = CN()
_C.DATALOADER.NUM_WORKERS = 4
# Infinite sampler: shuffle with SEED, continue mid-epoch on resume.
_C.DATALOADER.PIN_MEMORY = True

# ---------------------------------------------------------------------------- #
# Solver
# ---------------------------------------------------------------------------- #
_C.SOLVER = CN()
_C.SOLVER.OPTIMIZER = "SGD"
# Global batch over all processes.
_C.SOLVER.IMS_PER_BATCH = 256
# lr = BASE_LR * IMS_PER_BATCH / REFERENCE_BATCH_SIZE (linear scaling rule); 0 disables.
_C.SOLVER.BASE_LR = 0.03
_C.SOLVER.REFERENCE_BATCH_SIZE = 256
_C.SOLVER.MOMENTUM = 0.9
_C.SOLVER.NESTEROV = False
_C.SOLVER.WEIGHT_DECAY = 1e-4
# LARS: trust coefficient; biases and norm parameters are excluded from LARS and decay.
_C.SOLVER.LARS_ETA = 0.001
_C.SOLVER.LARS_EXCLUDE_BIAS_AND_NORM = True

# Schedule length: MAX_ITER > 0 wins; otherwise EPOCHS * len(train set) / IMS_PER_BATCH.
_C.SOLVER.MAX_ITER = -1
_C.SOLVER.EPOCHS = 0
# "WarmupCosineLR" or "WarmupMultiStepLR".
_C.SOLVER.LR_SCHEDULER_NAME = "WarmupCosineLR"
# Positions as fractions of the schedule are derived from epochs when EPOCHS > 0,
# so a command-line MAX_ITER shortens the whole schedule proportionally.
_C.SOLVER.WARMUP_EPOCHS = 0.0
_C.SOLVER.WARMUP_ITERS = 0
_C.SOLVER.WARMUP_FACTOR = 0.001
_C.SOLVER.STEP_EPOCHS = ()
_C.SOLVER.STEPS = ()
_C.SOLVER.GAMMA = 0.1
# Cosine decays to BASE_LR * COSINE_END_FACTOR.
_C.SOLVER.COSINE_END_FACTOR = 0.0
# False: one cosine over the whole run, warmup ramping up to its value at the warmup's end
# (detectron2, cvpods). True: the cosine starts after warmup from the full lr and spans the
# remaining iterations (google-research/simclr model_util.py, BYOL utils/schedules.py, MoCo v3
# main_moco.py adjust_learning_rate).
_C.SOLVER.COSINE_AFTER_WARMUP = False
_C.SOLVER.CHECKPOINT_PERIOD = 5000
# Keep only the newest N periodic checkpoints (0 keeps all).
_C.SOLVER.MAX_TO_KEEP = 3

# A NaN/Inf loss: "error" stops the run (naming the iteration and every loss term);
# "skip" drops that step's update and counts it as non_finite_steps.
_C.SOLVER.NON_FINITE_LOSS = "error"

# Speed options: channels-last memory format, torch.compile of the backbones, and
# gradient accumulation (IMS_PER_BATCH stays the batch of one optimizer step; each step
# runs GRAD_ACCUM_STEPS micro-batches, so contrastive negatives come from a micro-batch).
_C.SOLVER.CHANNELS_LAST = False
_C.SOLVER.COMPILE = False
_C.SOLVER.GRAD_ACCUM_STEPS = 1

_C.SOLVER.AMP = CN()
_C.SOLVER.AMP.ENABLED = False
# "float16" (CUDA, with grad scaling) or "bfloat16" (CUDA or CPU).
_C.SOLVER.AMP.DTYPE = "bfloat16"

# ---------------------------------------------------------------------------- #
# Evaluation
# ---------------------------------------------------------------------------- #
_C.TEST = CN()
# Run the evaluator (kNN monitor) every EVAL_PERIOD iterations; 0 disables periodic eval.
_C.TEST.EVAL_PERIOD = 0
# Evaluate once before training: the random-init baseline of the same backbone.
_C.TEST.EVAL_AT_START = False
_C.TEST.IMS_PER_BATCH = 256
# Names in ssl_lab.evaluation.EVALUATOR_REGISTRY, run on DATASETS.TEST[0]: "KNN" (weighted kNN
# of backbone features), "Classification" (top-k of the model's classifier), or a project's.
_C.TEST.EVALUATORS = ("KNN",)

_C.TEST.KNN = CN()
_C.TEST.KNN.K = 200
_C.TEST.KNN.TEMPERATURE = 0.07
# Labelled split whose features form the kNN memory; "" means DATASETS.TRAIN[0].
_C.TEST.KNN.MEMORY_DATASET = ""
# Memory at scale: the memory bank stays sharded on the ranks' devices; per rank the
# similarity blocks hold about QUERY_CHUNK_SIZE x MEMORY_CHUNK_SIZE floats (64 MB at 1024 x 16384),
# whatever the dataset size. MEMORY_PER_CLASS > 0 keeps the first N images of each class of the
# memory split (e.g. 100 on ImageNet: a 128k-image monitor, 10x cheaper than the full 1.28M).
_C.TEST.KNN.QUERY_CHUNK_SIZE = 1024
_C.TEST.KNN.MEMORY_CHUNK_SIZE = 16384
_C.TEST.KNN.MEMORY_PER_CLASS = 0
# "LinearProbe": a softmax classifier fitted full-batch to the standardized, L2-normalized features of
# the training split (evaluation transform), each lr of LRS tried on a stratified HOLDOUT_FRACTION of
# it, the best refitted on all of it and scored on DATASETS.TEST[0] (linear_probe/top1). Cheap enough
# to run at every EVAL_PERIOD. MAX_PER_CLASS > 0 fits on the first N images of each class (the
# features of the fitting split are gathered to every rank: bound it at ImageNet size).
_C.TEST.LINEAR_PROBE = CN()
_C.TEST.LINEAR_PROBE.LRS = (0.01, 0.03, 0.1, 0.3, 1.0)
_C.TEST.LINEAR_PROBE.STEPS = 500
_C.TEST.LINEAR_PROBE.WEIGHT_DECAY = 0.0
_C.TEST.LINEAR_PROBE.HOLDOUT_FRACTION = 0.1
_C.TEST.LINEAR_PROBE.MAX_PER_CLASS = 0

# Online linear probe (solo-learn's online classifier; ssl_lab.engine.online_probe): a linear layer
# on the detached backbone features of the training batches, trained alongside pretraining with its
# own SGD (constant lr, no weight decay as in solo-learn); no gradient reaches the backbone. Its
# top-1 on DATASETS.TEST[0] is logged as online_probe/top1 every TEST.EVAL_PERIOD and after training.
_C.TEST.ONLINE_PROBE = CN()
_C.TEST.ONLINE_PROBE.ENABLED = False
_C.TEST.ONLINE_PROBE.NUM_CLASSES = 1000
_C.TEST.ONLINE_PROBE.BASE_LR = 0.1
_C.TEST.ONLINE_PROBE.MOMENTUM = 0.9
_C.TEST.ONLINE_PROBE.WEIGHT_DECAY = 0.0
# The losses stay on the device between log periods; the host reads them (one device sync) at
# every LOG_PERIOD and every NON_FINITE_CHECK_PERIOD iterations to stop on a NaN/Inf loss
# (NON_FINITE_LOSS "skip" reads every step). 20, the LOG_PERIOD default, adds no read of its
# own and finds a NaN within 20 steps (seconds at ImageNet speed); a checkpoint always checks first.
_C.SOLVER.NON_FINITE_CHECK_PERIOD = 20

# Names in ssl_lab.engine.HOOK_REGISTRY of extra hooks (e.g. a project's monitors).
_C.EXTRA_HOOKS = ()

# ---------------------------------------------------------------------------- #
# timm backbones and MoCo v3
# ---------------------------------------------------------------------------- #
# MODEL.BACKBONE.NAME "TimmBackbone": timm.create_model(MODEL, pretrained=False, num_classes=0, **KWARGS);
# no hub download, weights come from MODEL.WEIGHTS or the model zoo.
_C.MODEL.BACKBONE.TIMM = CN()
_C.MODEL.BACKBONE.TIMM.MODEL = "vit_small_patch16_224"
# KEY, VALUE pairs passed to timm.create_model, e.g. ("num_heads", 12, "img_size", 32, "patch_size", 4).
_C.MODEL.BACKBONE.TIMM.KWARGS = ()
# ViTs: no gradient into the patch projection (MoCo v3's --stop-grad-conv1, a fixed random projection).
_C.MODEL.BACKBONE.TIMM.FREEZE_PATCH_EMBED = False
# ViTs: MoCo v3's initialization and fixed 2D sin-cos position embedding (moco-v3 vits.py).
_C.MODEL.BACKBONE.TIMM.MOCOV3_VIT = False
# SOLVER.OPTIMIZER "AdamW": its (beta1, beta2); SOLVER.WEIGHT_DECAY applies to every parameter.
_C.SOLVER.BETAS = (0.9, 0.999)

# Console/JSON/TensorBoard writers log every PERIOD iterations.
_C.LOG_PERIOD = 20


def get_cfg() -> CN:
    """A fresh copy of the default config tree."""
    return _C.clone()
