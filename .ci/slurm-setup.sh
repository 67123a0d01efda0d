#!/usr/bin/env bash
# Start a real single-node Slurm (Debian 12's slurm-wlm 22.05) for the SLURM tests.
#
# Run as root; no systemd needed (the daemons run as plain root processes). Idempotent: it installs
# the packages only if missing, rewrites the config and (re)starts munged, slurmctld and slurmd, so
# running it twice leaves one working Slurm. Bare machine: ~7 s; packages already there: <1 s.
#
# The node is called `localhost` (slurmd -N localhost), so nothing depends on the host name.
# Partitions: `cpu` (default) and `gpu`, both on that node. Two fake GPUs: gres `gpu:2` backed by
# character devices that behave like /dev/null; a job asking for a GPU gets CUDA_VISIBLE_DEVICES=0
# or 1, which proves the --gpus/--gres plumbing (not CUDA).
#
# Why no slurmdbd/MariaDB: the executor plugin's status checks run `squeue` (profiles/ci sets
# slurm-status-command: squeue; it needs MinJobAge >= 3 x slurm-init-seconds-before-status-checks,
# here 300 >= 6). Without a dbd `sacct` exits 1 and the plugin would wait forever, so the status
# command must not be sacct. The tests read Slurm's own records from the completion log of
# jobcomp/filetxt (JobCompLoc below): one line per finished job with its partition, state, exit
# code and allocated TRES. AccountingStorageTRES=gres/gpu makes that TRES string carry gres/gpu=N
# for GPU jobs. This saves ~15 s of MariaDB + slurmdbd setup and two daemons that can fail.
set -euo pipefail

[ "$(id -u)" -eq 0 ] || { echo "slurm-setup.sh: run as root" >&2; exit 1; }

LOGDIR=/var/log/slurm
JOBCOMP_LOG=$LOGDIR/jobcomp.log

# wait_for SECONDS CMD... : retry CMD every 0.2 s until it succeeds or the deadline passes
wait_for() {
  local end=$(( $(date +%s) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(date +%s)" -ge "$end" ] && { echo "timeout waiting for: $*" >&2; return 1; }
    sleep 0.2
  done
}

# stop_pidfile FILE : stop the daemon whose pid is in FILE and wait until it is gone. PID 1 may reap
# late, so a zombie counts as gone (and pgrep would lie: liveness is judged by pid files and pings).
stop_pidfile() {
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do
      [ -e "/proc/$pid" ] || break
      grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null && break
      sleep 0.1
    done
    if [ -e "/proc/$pid" ] && ! grep -q '^State:.*Z' "/proc/$pid/status" 2>/dev/null; then
      kill -9 "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

# 1. packages (only if missing). policy-rc.d keeps the postinst scripts from starting services.
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
   || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      munge slurmctld slurmd slurm-client >/dev/null
fi

# 2. munge: the postinst made a key; the runtime directories are ours to create.
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
if ! { munge -n | unmunge; } >/dev/null 2>&1; then
  stop_pidfile /run/munge/munged.pid
  runuser -u munge -- /usr/sbin/munged
fi
wait_for 10 sh -c 'munge -n | unmunge'

# 3. fake GPUs. A gpu gres without File= is dropped by 22.05 (node goes INVAL), and a regular file is
# rejected: it must be a character device. mknod needs CAP_MKNOD; without it fall back to /dev/null
# (then only one fake GPU, still enough for the tests).
GPU_FILES=/dev/fakegpu[0-1]
NGPU=2
for i in 0 1; do
  if [ ! -c /dev/fakegpu$i ]; then
    rm -f /dev/fakegpu$i
    mknod -m 666 /dev/fakegpu$i c 1 3 2>/dev/null || { GPU_FILES=/dev/null; NGPU=1; }
  fi
done

# 4. config sized to this machine. RealMemory above what slurmd detects makes the node INVAL.
CPUS=$(nproc)
MEM=$(( $(awk '/MemTotal/{print int($2/1024)}' /proc/meminfo) - 512 ))
install -d -m 0755 /etc/slurm /var/spool/slurmctld /var/spool/slurmd "$LOGDIR"
cat > /etc/slurm/slurm.conf <<CONF
# Written by imagenet-sd .ci/slurm-setup.sh: single node, fake GPUs, no accounting database.
ClusterName=ci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
ReturnToService=2
MailProg=/bin/true
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmdSpoolDir=/var/spool/slurmd
StateSaveLocation=/var/spool/slurmctld
SlurmctldLogFile=$LOGDIR/slurmctld.log
SlurmdLogFile=$LOGDIR/slurmd.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
GresTypes=gpu
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$JOBCOMP_LOG
# finished jobs stay visible to squeue (the plugin's status command) for 5 minutes
MinJobAge=300
# impossible requests fail at sbatch time instead of pending forever
EnforcePartLimits=ALL
# without a default every job would take the whole node's memory
DefMemPerCPU=512
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM Gres=gpu:$NGPU State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=localhost Default=NO  MaxTime=INFINITE State=UP
CONF
echo "NodeName=localhost Name=gpu File=$GPU_FILES" > /etc/slurm/gres.conf

# 5. daemons: slurmctld first and wait until it answers (a slurmd started before can hang for good),
# then slurmd as node `localhost`.
stop_pidfile /run/slurmd.pid
stop_pidfile /run/slurmctld.pid
/usr/sbin/slurmctld
wait_for 20 scontrol ping
/usr/sbin/slurmd -N localhost
node_ready() { timeout 5 sinfo -h -n localhost -o %T | grep -Eq '^(idle|mixed|allocated)$'; }
if ! wait_for 30 node_ready; then
  scontrol update nodename=localhost state=resume || true   # clears a DRAIN left by an earlier bad config
  wait_for 15 node_ready || { scontrol show node localhost; tail -20 "$LOGDIR/slurmctld.log"; exit 1; }
fi
sinfo -o '%P %a %D %T %c %m %G'
