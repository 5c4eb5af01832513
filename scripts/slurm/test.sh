#!/usr/bin/env bash
# Issue 23: the sharded Seq-KD pass on a real Slurm, end to end, on this one machine.
#
#   bash scripts/slurm/test.sh [TEACHER=runs/teacher-bench] [SRC=../shared/data/multi30k/train.en] [SENTENCES=2000] [N=4]
#
# Needs root (it installs Debian's slurm-wlm and munge if missing and starts munged, slurmctld and
# slurmd itself, in a temporary directory; all are stopped on exit). It submits
# scripts/slurm/seq-kd.sbatch as an array of N tasks, kills and requeues one task mid-pass
# (`scontrol requeue`), runs merge.sbatch after the array, and compares the merged corpus with an
# unsharded `seqkd distill seq-kd` byte for byte. Not part of the default test run.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
teacher=$(realpath "${1:-runs/teacher-bench}")
src=$(realpath "${2:-../shared/data/multi30k/train.en}")
sentences=${3:-2000} n=${4:-4}
seqkd=$(realpath "${SEQKD:-target/release/seqkd}")
[ "$(id -u)" = 0 ] || { echo "needs root (it starts munged, slurmctld and slurmd)"; exit 2; }
[ -x "$seqkd" ] || { echo "build seqkd first: cargo build --release"; exit 2; }
[ -f "$teacher/config.toml" ] || { echo "no teacher at $teacher"; exit 2; }
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
fi

work=$(mktemp -d /tmp/seqkd-slurm.XXXX)
chmod 755 "$work"
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
mkdir -p "$work"/{state,spool,log,munge,run}
pids=()
cleanup() {
  scancel --quiet --user=root 2>/dev/null || true
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  pkill -f "slurmd -D -f $work" 2>/dev/null || true
  pkill -f "slurmctld -D -f $work" 2>/dev/null || true
  pkill -f "munged.*$work" 2>/dev/null || true
  echo "logs and outputs kept in $work"
}
trap cleanup EXIT

# munge: a key of our own, a socket in the work directory.
dd if=/dev/urandom bs=1 count=1024 of="$work/munge/munge.key" 2>/dev/null
chmod 400 "$work/munge/munge.key"
chmod 700 "$work/munge"
munged --force --key-file="$work/munge/munge.key" --socket="$work/munge/socket" \
  --pid-file="$work/munge/pid" --log-file="$work/munge/log" --seed-file="$work/munge/seed"
export MUNGE_SOCKET=$work/munge/socket

cat > "$work/slurm.conf" <<CONF
ClusterName=seqkd-test
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$work/munge/socket
CredType=cred/munge
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/run/slurmctld.pid
SlurmdPidFile=$work/run/slurmd.pid
SlurmctldLogFile=$work/log/slurmctld.log
SlurmdLogFile=$work/log/slurmd.log
SlurmctldPort=16817
SlurmdPort=16818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF=$work/slurm.conf
slurmctld -D -f "$work/slurm.conf" >"$work/log/slurmctld.out" 2>&1 & pids+=($!)
slurmd -D -f "$work/slurm.conf" >"$work/log/slurmd.out" 2>&1 & pids+=($!)
for _ in $(seq 60); do
  sinfo -h -o %T 2>/dev/null | grep -qE '^idle' && break
  sleep 1
done
sinfo -h -o "%P %T %c" | grep -q idle || { echo "slurm did not come up"; tail "$work"/log/*; exit 1; }
echo "slurm up: $(sinfo -h -o '%n %c CPUs %T')"

head -n "$sentences" "$src" > "$work/src.txt"
export TEACHER=$teacher SRC=$work/src.txt OUT=$work/sharded.txt N=$n SEQKD=$seqkd
# Chunks of 100 sentences, so each task has several and can be killed mid-pass.
export SEQKD_ARGS="--chunk 100"
jid=$(sbatch --parsable --array=0-$((n - 1)) --cpus-per-task=1 --chdir="$work" \
  --export=ALL "$repo/scripts/slurm/seq-kd.sbatch")
echo "submitted array job $jid (tasks 0-$((n - 1)))"

# Requeue task 1 once it has finished a chunk (or its first chunk is under way, if too quick).
victim=${jid}_1
progress=$work/sharded.txt.shard-1-of-$n.progress
for _ in $(seq 600); do
  if [ -f "$progress" ] && grep -q '"chunks_done": *[1-9]' "$progress"; then break; fi
  sleep 0.1
done
state=$(squeue -h -j "$victim" -o %T 2>/dev/null || true)
if [ "$state" = RUNNING ]; then
  scontrol requeue "$victim"
  echo "requeued $victim while running ($(grep -o '"chunks_done": *[0-9]*' "$progress" || echo 'no chunk yet'))"
else
  echo "NOTE: $victim was ${state:-finished} before it could be requeued: nothing was killed"
fi

# Wait for the array, then merge as a dependent job would.
for _ in $(seq 3600); do
  [ -z "$(squeue -h -j "$jid" 2>/dev/null)" ] && break
  sleep 1
done
[ -z "$(squeue -h -j "$jid")" ] || { echo "array still running after an hour"; exit 1; }
sbatch --wait --chdir="$work" --export=ALL "$repo/scripts/slurm/merge.sbatch" >/dev/null

echo "task 1's log (a requeued task resumes: fewer sentences 'in this run'):"
sed 's/^/  /' "$work/seq-kd-${jid}_1.log"

# The same pass unsharded, outside Slurm.
"$seqkd" distill seq-kd --teacher "$teacher" --src "$work/src.txt" --out "$work/whole.txt" \
  --chunk 100 --threads 1 --quiet
if cmp "$work/sharded.txt" "$work/whole.txt"; then
  echo "PASS: merged Slurm shards == unsharded pass, byte for byte ($(wc -l < "$work/whole.txt") lines, $(wc -c < "$work/whole.txt") bytes)"
else
  echo "FAIL: merged Slurm shards differ from the unsharded pass"; exit 1
fi
