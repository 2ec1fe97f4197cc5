#!/usr/bin/env bash
# Start a single-node Slurm on this machine (Debian/Ubuntu packages), for the tests marked `slurm`.
#
# Idempotent: installs slurmctld, slurmd, slurm-client and munge when missing, writes a munge key and
# /etc/slurm/slurm.conf sized from `slurmd -C` (this host's CPUs and memory), starts munged, slurmctld
# and slurmd when they are not running, and waits until `sinfo` shows the node idle. Settings that work
# in a container without systemd or cgroups: proctrack/linuxproc, task/none, no accounting. CPUs are
# allocated per task (cons_tres, CR_CPU), so a 2-task array runs both tasks at once on 2 CPUs; jobs may
# be requeued (JobRequeue=1). Needs root. Prints the partition name (`debug`) when it is up.
set -euo pipefail

[ "$(id -u)" = 0 ] || { echo "start_local_slurm.sh: run as root (it installs packages and starts daemons)" >&2; exit 2; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null \
        || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

# munge: one key, owned by munge, mode 0400; munged started once
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    su -s /bin/sh munge -c /usr/sbin/munged
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi

# slurm.conf: this host (NodeName must be `hostname -s`), its CPUs and memory as slurmd sees them
HOST=$(hostname -s)
NODE=$(slurmd -C | head -1)             # NodeName=vm CPUs=2 Boards=1 ... RealMemory=24105
NODE=${NODE/NodeName=* CPUs/NodeName=$HOST CPUs}
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
chown slurm:slurm /var/spool/slurmctld /var/log/slurm 2>/dev/null || true
CONF=$(cat <<CONF
# written by scripts/slurm/start_local_slurm.sh: one node, localhost, no cgroups, no accounting
ClusterName=workbench
SlurmctldHost=$HOST
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobRequeue=1
ReturnToService=2
KillWait=60
# a requeued job waits cred_expire seconds before it may start again (default 120): short for the tests
AuthInfo=cred_expire=10
MinJobAge=3600
SchedulerParameters=sched_interval=2,bf_interval=2
MpiDefault=none
$NODE State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
if [ ! -f /etc/slurm/slurm.conf ] || [ "$(cat /etc/slurm/slurm.conf)" != "$CONF" ]; then
    printf '%s\n' "$CONF" > /etc/slurm/slurm.conf
    changed=1
else
    changed=0
fi

if [ "$changed" = 1 ]; then  # a restart, not `scontrol reconfigure`: slurmctld reads cred_expire at start only
    for daemon in slurmctld slurmd; do
        pid=$(pgrep -x $daemon || true)
        [ -n "$pid" ] && kill $pid
        for _ in $(seq 200); do pgrep -x $daemon >/dev/null || break; sleep 0.1; done
    done
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd

for _ in $(seq 120); do
    state=$(timeout 5 sinfo -h -n "$HOST" -o %t 2>/dev/null | head -1 || true)
    case "$state" in
        idle|mix|alloc) echo "slurm up: node $HOST $state, partition debug"; exit 0 ;;
        down*|drain*|unk*) scontrol update nodename="$HOST" state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
done
echo "start_local_slurm.sh: the node did not become idle within 60 s; see /var/log/slurm/*.log" >&2
sinfo >&2 || true
exit 1
