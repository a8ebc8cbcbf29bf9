#!/usr/bin/env bash
# The runs behind "does the paper's StableGrad deliver?": the PINN depth sweep's
# new optimizers on every problem (critical init) and the BN-free stability
# frontier. Every command resumes where the results files stop, so this script
# can be run again and again (on the 2-core CPU, a few groups a session; on a
# lent GPU, as much as its time allows). Each row records its device and commit.
#
#   bash benchmarks/issue23_runs.sh [MAX_MINUTES]     # default 120 per command
#
# Then regenerate the reports:
#   python benchmarks/pinn_depth_sweep_report.py
#   python benchmarks/bnfree_stress_report.py
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python}
minutes=${1:-120}
sweep=("$python" pinn_depth_sweep.py --inits critical --max-minutes "$minutes")
stress=("$python" bnfree_stress.py --width 16 --max-minutes "$minutes")
paper="stablegrad(prediction)+adam"
frontier="bn,none,none+stablegrad,none+stablegrad(prediction),none+agc,skipinit"
frontier="$frontier,skipinit+stablegrad(prediction)"

# 1. The cells that decide the verdict: the paper's variant and the schedule
#    baseline on Burgers and Helmholtz, deep nets first.
"${sweep[@]}" --problems burgers,helmholtz --optimizers "$paper" --depths 16,32,64
"${sweep[@]}" --problems burgers,helmholtz,poisson --optimizers adam+decay \
  --depths 16,32,64
"${sweep[@]}" --problems burgers,helmholtz --optimizers agc+adam --depths 16,32,64
# Grid edges: a tuned rate at the top of the grid gets the next rate up (the
# report reads each group's grid from its rows). Helmholtz adam+decay tuned at
# 3e-3, the top, at depth 16.
"${sweep[@]}" --problems helmholtz --optimizers adam+decay --depths 16,32,64 \
  --lrs 1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2
# 2. The BN-free frontier on ResNet-18: AdamW, then SGD with momentum.
"${stress[@]}" --models resnet18 --optimizers adamw --lrs 0.001,0.003,0.01,0.03 \
  --variants "$frontier"
"${stress[@]}" --models resnet18 --optimizers sgd --lrs 0.01,0.03,0.1 \
  --variants "$frontier"
# 3. The rest of the PINN grid: every depth, the other schedules and ablations.
"${sweep[@]}" --problems burgers,poisson,helmholtz \
  --optimizers "$paper,agc+adam,adam+decay,adam+decay(1%),adam+warmup+decay"
"${sweep[@]}" --problems poisson,helmholtz \
  --optimizers "stablegrad(prediction)+adam+decay,stablegrad(prediction-global)+adam"
# 4. ResNet-50 and EfficientNet-tiny at AdamW's collapse rates (see the
#    ResNet-18 frontier; 1e-2 and 3e-2 in the probe).
"${stress[@]}" --models resnet50,effnet-tiny --optimizers adamw --lrs 0.01,0.03 \
  --variants "$frontier"
