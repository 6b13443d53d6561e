#!/usr/bin/env bash
# Launch one distributed training run (python -m ecorec.train) with torchrun, locally or under SLURM.
#
#   launch_torchrun.sh --config run.yaml [--config run2.yaml ...] [--nodes N] [--agents A] [--nproc-per-agent P]
#                      [--cpus-per-task C] [--python PY] [--emulate "CLUSTER RUN ARGS"] [-- extra ecorec.train args]
#
# Several --config files train one after another in one launch (same world size; python -m ecorec.train).
#
# 1. `python -m ecorec.train --config run.yaml --prepare --world-size A*P` validates the configurations (their
#    parallel.world_size must equal the ranks launched) and writes the sharding plan, so that a bad
#    configuration fails here, naming the field, before any worker is started.
# 2. One torchrun agent (A = 1): `torchrun --standalone --nproc-per-node P` on this machine (also what a
#    single-node SLURM job step runs; without SLURM, several agents on one node run as one).
#    Several agents (A > 1, e.g. one per node): inside a SLURM allocation,
#    `srun --nodes N --ntasks A --ntasks-per-node A/N --cpus-per-task C torchrun --nnodes A --nproc-per-node P
#     --rdzv-backend c10d --rdzv-endpoint $(hostname):PORT --rdzv-id $SLURM_JOB_ID`. The SLURM executor plugin
#    strips SLURM_* variables from the job's environment (except SLURM_JOB_ID), so every srun flag is explicit.
# 3. --emulate "ARGS" without SLURM: the run on an emulated multi-node cluster on this machine,
#    `python -m ecorec.cluster run ARGS --fallback -- -m ecorec.train ...` (ARGS: --nodes, --ranks-per-node,
#    --link-gbit / --dilation-file, ...; without root it falls back to plain loopback with a warning). Inside a
#    SLURM allocation nothing is emulated (a real cluster) and ARGS are ignored.
set -euo pipefail

configs=()
nodes=1
agents=1
nproc=1
cpus=1
python="${PYTHON:-python}"
emulate=""
extra=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --config) configs+=(--config "$2"); shift 2 ;;
        --nodes) nodes="$2"; shift 2 ;;
        --agents) agents="$2"; shift 2 ;;
        --nproc-per-agent) nproc="$2"; shift 2 ;;
        --cpus-per-task) cpus="$2"; shift 2 ;;
        --python) python="$2"; shift 2 ;;
        --emulate) emulate="$2"; shift 2 ;;
        --) shift; extra=("$@"); break ;;
        *) echo "launch_torchrun.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if (( ${#configs[@]} == 0 )); then
    echo "launch_torchrun.sh: --config is required" >&2
    exit 2
fi
for name in nodes agents nproc cpus; do
    value="${!name}"
    if ! [[ "$value" =~ ^[1-9][0-9]*$ ]]; then
        echo "launch_torchrun.sh: --${name} must be a positive integer, got '${value}'" >&2
        exit 2
    fi
done
if (( agents % nodes != 0 )); then
    echo "launch_torchrun.sh: --agents ${agents} does not split evenly over --nodes ${nodes}" >&2
    exit 2
fi

# CPU threads per rank: the agent's CPUs shared by its ranks. Snakemake exports OMP_NUM_THREADS=<job threads> to
# every job and torchrun keeps a value it inherits, so without this each of P ranks would run P-fold too many
# OpenMP threads; on a full machine their spinning stalls gloo steps for seconds (measured: 2 ranks on 2 cores,
# 0.14 s steps with 1 thread each, 0.3-36 s with 2).
threads_per_rank=$(( cpus / nproc > 0 ? cpus / nproc : 1 ))
export OMP_NUM_THREADS="$threads_per_rank" MKL_NUM_THREADS="$threads_per_rank"
echo "launch_torchrun.sh threads: OMP_NUM_THREADS=${threads_per_rank} per rank (${cpus} CPUs, ${nproc} ranks)" >&2

run() {  # print the command (it lands in the rule's log), then replace this shell by it
    echo "launch_torchrun.sh: $*" >&2
    exec "$@"
}

"$python" -m ecorec.train "${configs[@]}" --prepare --world-size $((agents * nproc))

if [[ -n "$emulate" ]]; then
    if [[ -z "${SLURM_JOB_ID:-}" ]]; then
        read -r -a emulate_args <<< "$emulate"
        run "$python" -m ecorec.cluster run "${emulate_args[@]}" --fallback -- \
            -m ecorec.train "${configs[@]}" "${extra[@]}"
    fi
    echo "launch_torchrun.sh: inside SLURM job ${SLURM_JOB_ID}: a real cluster, nothing emulated" >&2
fi

if (( agents == 1 )); then
    run "$python" -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node="$nproc" \
        -m ecorec.train "${configs[@]}" "${extra[@]}"
fi

if [[ -z "${SLURM_JOB_ID:-}" ]]; then
    if (( nodes == 1 )); then  # one machine without SLURM: one agent runs every rank (same ranks, same result)
        run "$python" -m torch.distributed.run --standalone --nnodes=1 --nproc-per-node=$((agents * nproc)) \
            -m ecorec.train "${configs[@]}" "${extra[@]}"
    fi
    echo "launch_torchrun.sh: ${nodes} nodes need a SLURM allocation (SLURM_JOB_ID is not set)" >&2
    exit 2
fi
head_node="$(hostname)"
port=$((29500 + SLURM_JOB_ID % 1000))
run srun --nodes="$nodes" --ntasks="$agents" --ntasks-per-node=$((agents / nodes)) \
    --cpus-per-task="$cpus" --kill-on-bad-exit=1 \
    "$python" -m torch.distributed.run --nnodes="$agents" --nproc-per-node="$nproc" \
    --rdzv-backend=c10d --rdzv-endpoint="${head_node}:${port}" --rdzv-id="$SLURM_JOB_ID" \
    -m ecorec.train "${configs[@]}" "${extra[@]}"
