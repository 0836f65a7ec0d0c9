#!/usr/bin/env bash
# A real one-node Slurm cluster for the tests (and for trying --launcher slurm on one machine).
#   tests/slurm/cluster.sh start   install slurm-wlm and munge from Debian if missing (needs root and apt-get), write
#                                  a one-node slurm.conf for this machine under $PRUNE_SLURM_DIR (default
#                                  /tmp/prune-slurm), start munged, slurmctld and slurmd; prints the SLURM_CONF to export
#   tests/slurm/cluster.sh stop    stop the daemons it started
set -euo pipefail
dir=${PRUNE_SLURM_DIR:-/tmp/prune-slurm}
conf=$dir/slurm.conf
case "${1:-}" in
  start)
    if ! command -v slurmctld > /dev/null || ! command -v munged > /dev/null; then
      [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null || { echo "cluster.sh: slurm-wlm is not installed and this is not root with apt-get" >&2; exit 2; }
      { apt-get install -y -q slurm-wlm munge || { apt-get update -q && apt-get install -y -q slurm-wlm munge; }; } > "$dir.apt.log" 2>&1 \
        || { echo "cluster.sh: apt-get install slurm-wlm munge failed (see $dir.apt.log)" >&2; exit 2; }
    fi
    [ "$(id -u)" = 0 ] || { echo "cluster.sh: starting slurmd needs root" >&2; exit 2; }
    mkdir -p "$dir"/{state,spool,log,run}
    host=$(hostname -s)
    cpus=$(nproc)
    memory=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
    cat > "$conf" <<CONF
ClusterName=prunetest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldPort=6917
SlurmdPort=6918
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobRequeue=1
MinJobAge=30
NodeName=$host CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
    pgrep -x munged > /dev/null || { mkdir -p /run/munge; chown munge:munge /run/munge 2> /dev/null || true; munged --force 2> /dev/null || true; }
    export SLURM_CONF=$conf
    [ -f "$dir/run/slurmctld.pid" ] && kill -0 "$(cat "$dir/run/slurmctld.pid")" 2> /dev/null || slurmctld
    [ -f "$dir/run/slurmd.pid" ] && kill -0 "$(cat "$dir/run/slurmd.pid")" 2> /dev/null || slurmd
    for _ in $(seq 1 60); do
      state=$(sinfo -h -o %T 2> /dev/null || true)
      case "$state" in
        idle*|mixed*|allocated*) echo "SLURM_CONF=$conf"; exit 0 ;;
        down*|drain*) scontrol update NodeName="$host" State=RESUME > /dev/null 2>&1 || true ;;
      esac
      sleep 1
    done
    echo "cluster.sh: slurmd did not come up (see $dir/log/)" >&2
    exit 2
    ;;
  stop)
    for daemon in slurmd slurmctld; do
      pidfile=$dir/run/$daemon.pid
      [ -f "$pidfile" ] || continue
      pid=$(cat "$pidfile")
      kill "$pid" 2> /dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2> /dev/null || break; sleep 0.1; done  # gone before a restart
      rm -f "$pidfile"
    done
    ;;
  *) echo "usage: tests/slurm/cluster.sh start|stop" >&2; exit 2 ;;
esac
