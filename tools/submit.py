#!/usr/bin/env python
"""Submit a train_net.py run to SLURM with submitit; the job requeues itself when preempted or
about to time out, and continues from its checkpoint.

    python tools/submit.py --config-file CFG --nodes 2 --gpus-per-node 8 --partition P --timeout 4320 \\
        [KEY VALUE ...]

Each node runs one submitit task, which starts `tools/train_net.py --resume --num-gpus G
--num-machines N --machine-rank <node>` (one process per GPU) and supervises it. Before the time
limit (--signal-delay seconds) and on preemption, SLURM sends submitit's signal (USR2) to the task;
submitit calls `TrainJob.checkpoint()` on task 0, which takes train_net.py's own SIGTERM path
(launch forwards it to every worker; hooks.PreemptionCheckpointer saves a checkpoint at its next
check and exits) and returns the same job, which submitit requeues. The job always runs with
--resume: OUTPUT_DIR is checked here, before submission (holding checkpoints, it needs --resume
here too), so a requeued job, by submitit or by SLURM itself, continues from its last checkpoint.
Logs of the tasks: --job-dir.
"""

import argparse
import os
import signal
import subprocess
import sys

_CHECKOUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
if os.path.isdir(os.path.join(_CHECKOUT, "ssl_lab")):  # run from a checkout; installed, the script is on PATH
    sys.path.insert(0, _CHECKOUT)

import submitit  # noqa: E402

from ssl_lab.engine import setup_cfg, validate  # noqa: E402
from ssl_lab.utils.errors import exit_on_user_error  # noqa: E402

TRAIN_NET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "train_net.py")


def _ignore_preemption_signal():
    """In train_net.py's processes: SLURM may signal the whole step, and USR2 would kill them (its
    default action); they stop on the SIGTERM that TrainJob.checkpoint() sends instead."""
    signal.signal(submitit.JobEnvironment._usr_sig(), signal.SIG_IGN)


class TrainJob:
    """The submitted callable: runs train_net.py on this node and waits for it.

    `train_args`: train_net.py's --config-file and KEY VALUE overrides; `gpus_per_node`: its
    processes on each node.
    """

    def __init__(self, train_args, gpus_per_node: int):
        self.train_args = list(train_args)
        self.gpus_per_node = gpus_per_node
        self._process = None

    def command(self) -> list:
        """train_net.py's command line on this node of the job."""
        env = submitit.JobEnvironment()
        dist_url = "auto"
        if env.num_nodes > 1:
            torch_env = submitit.helpers.TorchDistributedEnvironment()
            dist_url = f"tcp://{torch_env.master_addr}:{torch_env.master_port}"
        return [
            sys.executable,
            TRAIN_NET,
            "--resume",
            "--num-gpus",
            str(self.gpus_per_node),
            "--num-machines",
            str(env.num_nodes),
            "--machine-rank",
            str(env.node),
            "--dist-url",
            dist_url,
            *self.train_args,
        ]

    def __call__(self):
        self._process = subprocess.Popen(self.command(), preexec_fn=_ignore_preemption_signal)
        code = self._process.wait()
        if code != 0:
            raise RuntimeError(
                f"train_net.py exited with status {code}"
                + (" (stopped by a signal after saving a checkpoint; resubmit to continue)" if code in (130, 143) else "")
            )

    def checkpoint(self):
        """submitit's requeue hook: stop train_net.py through its SIGTERM path (it checkpoints and exits),
        then resubmit this job (which resumes)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGTERM)
            try:  # not Popen.wait(): this handler interrupted __call__'s wait, which holds Popen's wait lock
                os.waitpid(self._process.pid, 0)
            except ChildProcessError:  # already reaped
                pass
        return submitit.helpers.DelayedSubmission(TrainJob(self.train_args, self.gpus_per_node))

    def __getstate__(self):
        return {**self.__dict__, "_process": None}  # a process handle does not travel with the job


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True, metavar="FILE")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in OUTPUT_DIR (without it, an OUTPUT_DIR with checkpoints is refused)"
    )
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--gpus-per-node", type=int, default=8, help="train_net.py processes per node")
    parser.add_argument("--partition", default="", help="SLURM partition ('' : the cluster's default)")
    parser.add_argument("--timeout", type=int, default=60 * 72, metavar="MIN", help="time limit of one allocation")
    parser.add_argument("--cpus-per-gpu", type=int, default=8)
    parser.add_argument(
        "--signal-delay",
        type=int,
        default=120,
        metavar="S",
        help="seconds before the time limit at which SLURM signals the job to checkpoint",
    )
    parser.add_argument("--job-dir", default="", help="submitit's folder (default: OUTPUT_DIR/submitit)")
    parser.add_argument(
        "--cluster", default=None, choices=("slurm", "local", "debug"), help="submitit's executor (default: SLURM if available, else local)"
    )
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, default=[], metavar="KEY VALUE", help="config overrides, passed on to train_net.py"
    )
    return parser


def submit(args):
    """Check the config and OUTPUT_DIR, then submit TrainJob; returns the submitit job."""
    for name in ("nodes", "gpus_per_node", "timeout", "cpus_per_gpu"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    args.config_file = os.path.abspath(args.config_file)
    cfg = setup_cfg(args)
    validate(cfg, args.nodes * args.gpus_per_node, resume=args.resume)  # the job itself always resumes
    executor = submitit.AutoExecutor(folder=args.job_dir or os.path.join(cfg.OUTPUT_DIR, "submitit"), cluster=args.cluster)
    executor.update_parameters(
        name=os.path.basename(os.path.normpath(cfg.OUTPUT_DIR)),
        nodes=args.nodes,
        tasks_per_node=1,
        gpus_per_node=args.gpus_per_node,
        cpus_per_task=args.cpus_per_gpu * args.gpus_per_node,
        timeout_min=args.timeout,
        slurm_partition=args.partition or None,
        slurm_signal_delay_s=args.signal_delay,
    )
    return executor.submit(TrainJob(["--config-file", args.config_file, *args.opts], args.gpus_per_node))


def main(argv=None):
    args = build_parser().parse_args(argv)
    with exit_on_user_error():
        job = submit(args)
    print(f"Submitted job {job.job_id}; logs in {job.paths.folder}")


if __name__ == "__main__":
    main()
