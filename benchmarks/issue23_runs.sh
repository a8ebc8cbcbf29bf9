#!/usr/bin/env bash
# The runs behind "does the paper's StableGrad deliver?": the PINN depth sweep's
# new optimizers on every problem (critical init) and the BN-free stability
# frontier. Every command resumes where the results files stop, so this script
# can be run again and again (on the 2-core CPU, a few groups a session; on a
# lent GPU, as much as its time allows). Each row records its device and commit.
#
#   bash benchmarks/issue23_runs.sh [pinn|bnfree|all] [MAX_MINUTES]
#
# The two parts write to different files, so they may run at once (one per
# core: `taskset -c 1 bash issue23_runs.sh pinn`, `taskset -c 0 ... bnfree`).
# Then regenerate the reports:
#   python benchmarks/pinn_depth_sweep_report.py
#   python benchmarks/bnfree_stress_report.py
set -euo pipefail
cd "$(dirname "$0")"
python=${PYTHON:-python}
part=${1:-all}
minutes=${2:-120}
sweep=("$python" pinn_depth_sweep.py --inits critical --max-minutes "$minutes")
stress=("$python" bnfree_stress.py --width 16 --max-minutes "$minutes")
paper="stablegrad(prediction)+adam"
ablations="stablegrad(prediction)+adam+decay,stablegrad(prediction-global)+adam"
# adam+decay ends at 10% of its peak because the prediction reference falls 2-8x
# over a run (the history file: Burgers 2-4x, Helmholtz 4-5x, Poisson 6-7x);
# a 1% end point (adam+decay(1%), still in the sweep) would overshoot it.
frontier="bn,none,none+stablegrad,none+stablegrad(prediction),none+agc,skipinit"
frontier="$frontier,skipinit+stablegrad(prediction)"

pinn() {
  # 1. The cells that decide the verdict, deep nets first: the paper's variant,
  #    the schedule baseline and AGC on every problem.
  "${sweep[@]}" --problems burgers,helmholtz --optimizers "$paper" --depths 16,32,64
  "${sweep[@]}" --problems burgers,helmholtz,poisson --optimizers adam+decay \
    --depths 16,32,64
  "${sweep[@]}" --problems burgers,helmholtz --optimizers agc+adam --depths 16,32,64
  # Grid edges: a tuned rate at the top of the grid gets the next rate up (the
  # report reads each group's grid from its rows).
  # Helmholtz adam+decay tuned at 3e-3, the top, at depth 16; so did Burgers
  # adam+decay at depth 16 and the paper's variant on Poisson at depth 4.
  wide=1e-5,3e-5,1e-4,3e-4,1e-3,3e-3,1e-2
  "${sweep[@]}" --problems helmholtz,burgers --optimizers adam+decay \
    --depths 16,32,64 --lrs "$wide"
  # At depth 4 (and for Adam at 8 and 16) the paper's variant, AGC, Adam and the
  # output reference tuned at 3e-3 on Burgers or Helmholtz; the ablation with
  # the decay tuned there on Helmholtz at depth 16. Every depth gets 1e-2.
  "${sweep[@]}" --problems burgers --lrs "$wide" \
    --optimizers "$paper,agc+adam,adam,stablegrad+adam"
  "${sweep[@]}" --problems helmholtz --lrs "$wide" \
    --optimizers "agc+adam,adam,stablegrad+adam,stablegrad(prediction)+adam+decay"
  # 2. More than a schedule? The paper's variant with adam+decay's decay, and
  #    its global scale without the per-layer normalisation.
  "${sweep[@]}" --problems poisson,helmholtz --optimizers "$ablations" --depths 16,32,64
  # 3. Shallow nets, then the warmup schedule, then the ablations' shallow nets.
  #    A group whose grid was widened keeps its wide grid at every depth (the
  #    fixed protocol's rate comes from depth 16's grid).
  "${sweep[@]}" --problems burgers,helmholtz --optimizers "$paper,agc+adam" --depths 4,8
  "${sweep[@]}" --problems burgers,helmholtz --optimizers adam+decay --depths 4,8 \
    --lrs "$wide"
  "${sweep[@]}" --problems poisson --optimizers adam+decay --depths 4,8
  "${sweep[@]}" --problems poisson --optimizers "$paper" --lrs "$wide"
  "${sweep[@]}" --problems burgers,poisson,helmholtz --optimizers adam+warmup+decay
  "${sweep[@]}" --problems poisson --optimizers "$ablations"
  "${sweep[@]}" --problems helmholtz --optimizers stablegrad\(prediction-global\)+adam
  # 4. Grid edges left by steps 1-3 (the report marks them ↑): the warmup
  #    schedule tuned at 3e-3 on every problem, the ablations and Poisson's
  #    adam+decay at 3e-3, and the groups already widened at 1e-2.
  "${sweep[@]}" --problems burgers,poisson,helmholtz --optimizers adam+warmup+decay \
    --lrs "$wide"
  "${sweep[@]}" --problems poisson --optimizers "adam+decay,$ablations" --lrs "$wide"
  "${sweep[@]}" --problems helmholtz --optimizers stablegrad\(prediction-global\)+adam \
    --lrs "$wide"
  wider="$wide,3e-2"
  "${sweep[@]}" --problems burgers,helmholtz --optimizers adam+decay --lrs "$wider"
  "${sweep[@]}" --problems burgers --optimizers adam --lrs "$wider"
  "${sweep[@]}" --problems helmholtz --optimizers stablegrad\(prediction\)+adam+decay \
    --lrs "$wider"
  # 5. Step 4's own edges: both schedules tuned at 1e-2 on Poisson's shallow
  #    nets (depths 4-16), the warmup schedule on Burgers and Helmholtz too, the
  #    paper's variant with the decay on Poisson at depth 4; that variant tuned
  #    at 3e-2 on Helmholtz at depth 4. Then 1e-1 for Poisson's schedules (the
  #    warmup schedule tuned at 3e-2 at depth 4).
  "${sweep[@]}" --problems burgers,poisson,helmholtz --optimizers adam+warmup+decay \
    --lrs "$wider"
  "${sweep[@]}" --problems poisson --optimizers adam+decay --lrs "$wider"
  "${sweep[@]}" --problems helmholtz --optimizers stablegrad\(prediction\)+adam+decay \
    --lrs "$wider,1e-1"
  "${sweep[@]}" --problems poisson --optimizers stablegrad\(prediction\)+adam+decay \
    --lrs "$wider"
  "${sweep[@]}" --problems poisson --optimizers adam+warmup+decay,adam+decay \
    --lrs "$wider,1e-1"
  # The output reference, which the paper's variant is judged against too,
  # tuned at 3e-3 on Poisson at depths 4 and 8.
  "${sweep[@]}" --problems poisson --optimizers stablegrad+adam --lrs "$wide"
}

bnfree() {
  # The BN-free frontier on ResNet-18 (AdamW, then SGD with momentum), then
  # ResNet-50 and EfficientNet-tiny at AdamW's collapse rates.
  "${stress[@]}" --models resnet18 --optimizers adamw --lrs 0.001,0.003,0.01,0.03 \
    --variants "$frontier"
  "${stress[@]}" --models resnet18 --optimizers sgd --lrs 0.01,0.03,0.1 \
    --variants "$frontier"
  "${stress[@]}" --models effnet-tiny --optimizers adamw --lrs 0.01,0.03 \
    --variants "$frontier"
  # Longer runs where the verdict turns on seeds still recovering at 300 steps:
  # ResNet-18 under AdamW 1e-2 (the paper's variant 2/3, SkipInit 2/3, none 0/3).
  "${stress[@]}" --models resnet18 --optimizers adamw --lrs 0.003,0.01 --steps 1000 \
    --variants "none,none+stablegrad(prediction),skipinit,skipinit+stablegrad(prediction)"
  "${stress[@]}" --models resnet50 --optimizers adamw --lrs 0.01,0.03 \
    --variants "$frontier"
}

case "$part" in
  pinn) pinn ;;
  bnfree) bnfree ;;
  all) pinn; bnfree ;;
  *) echo "usage: $0 [pinn|bnfree|all] [MAX_MINUTES]" >&2; exit 2 ;;
esac
