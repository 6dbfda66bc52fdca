"""`curate train DATA -o RUN_DIR --model tiny`: train CLIP on exported shards (torchrun for several processes)."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = "train CLIP (tiny, ViT-B-32, ViT-B-16, ViT-L-14) on exported Parquet or WebDataset shards"
ORDER = 70


MODELS = "tiny, ViT-B-32, ViT-B-16, ViT-L-14"  # curate.train.model.CONFIGS (not imported here: torch is an extra)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(NAME, help=HELP, description=HELP + ". Several processes or GPUs: "
                            "torchrun --nproc_per_node N -m curate train ...")
    parser.add_argument("data", nargs="+", metavar="DATA",
                        help="shard files or folders of .parquet/.tar shards (e.g. DATASET/export/RECIPE)")
    parser.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="run directory (config, metrics, checkpoints)")
    parser.add_argument("--model", default="tiny", help=f"architecture: {MODELS} (default tiny)")
    parser.add_argument("--steps", type=int, help="optimizer steps")
    parser.add_argument("--epochs", type=float, help="passes over the data instead of --steps (Parquet shards only)")
    parser.add_argument("--batch-size", type=int, default=64, help="global batch: over all ranks and accumulation")
    parser.add_argument("--accum-steps", type=int, default=1, help="micro-batches per step (exact full-batch loss)")
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--weight-decay", type=float, default=0.2)
    parser.add_argument("--warmup-steps", type=int, default=100)
    parser.add_argument("--grad-clip", type=float, default=1.0, help="max gradient norm (0: off)")
    parser.add_argument("--loss", choices=["clip", "siglip"], default="clip")
    parser.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                        help="auto: bf16 autocast on GPU, fp32 on CPU")
    parser.add_argument("--grad-checkpointing", action="store_true", help="recompute activations to save memory")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--tokenizer", metavar="PATH",
                        help="a saved tokenizer.json or CLIP's bpe_simple_vocab_16e6.txt.gz (default: train a BPE)")
    parser.add_argument("--vocab-size", type=int, default=4096, help="size of the BPE trained on the captions")
    parser.add_argument("--image-size", type=int, help="override the model's input size")
    parser.add_argument("--workers", type=int, default=2, help="data loader processes per rank (0: main process)")
    parser.add_argument("--shuffle-buffer", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=int, default=500, help="checkpoint every N steps")
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument("--init", nargs=2, metavar=("KIND", "CHECKPOINT"),
                        help="fine-tune from pretrained weights: KIND is openai (TorchScript or state_dict) or "
                             "open_clip (a state_dict file with open_clip key names); needs --tokenizer CLIP_VOCAB")
    parser.add_argument("--resume", action="store_true", help="continue RUN_DIR from its latest checkpoint, exactly")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda")
    parser.add_argument("--threads", type=int, help="CPU threads for the model (default: torch's; 1 on a busy machine)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    import os

    from curate.errors import CurateError
    from curate.extras import require

    require("torch", "train")
    require("tokenizers", "train")
    from curate.train.model import CONFIGS
    from curate.train.train import TrainConfig, train

    if args.model not in CONFIGS:
        raise CurateError(f"--model {args.model}: choose one of {', '.join(CONFIGS)}")

    init_kind, init = args.init or ("open_clip", None)
    if init_kind not in ("openai", "open_clip"):
        raise CurateError(f"--init {init_kind} {init}: KIND must be openai or open_clip")

    cfg = TrainConfig(
        data=args.data, out_dir=args.out, model=args.model, tokenizer=args.tokenizer, vocab_size=args.vocab_size,
        image_size=args.image_size, batch_size=args.batch_size, accum_steps=args.accum_steps, steps=args.steps,
        epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, warmup_steps=args.warmup_steps,
        grad_clip=args.grad_clip or None, loss=args.loss, precision=args.precision,
        grad_checkpointing=args.grad_checkpointing, compile=args.compile, workers=args.workers,
        shuffle_buffer=args.shuffle_buffer, seed=args.seed, save_every=args.save_every, log_every=args.log_every,
        init=init, init_kind=init_kind, resume=args.resume, device=args.device,
        threads=args.threads)
    result = train(cfg)
    if int(os.environ.get("RANK", "0")) == 0:  # under torchrun, one report
        print(json.dumps(result, indent=2))
    return 0
