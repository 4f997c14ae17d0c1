#!/usr/bin/env bash
# Regenerate comparisons/examples/: the classic question's report (Markdown, figure embedded) and its figure, and the schedule scenarios' figures.
# tests/test_reports.py checks the committed files are what this writes.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/xreg compare comparisons/classic_logistic.toml --force \
  --report comparisons/examples/classic_logistic.md --plot comparisons/examples/classic_logistic.png >/dev/null || [ $? -eq 1 ]
echo "wrote comparisons/examples/classic_logistic.md and .png"
# The training-step scenarios' figures (issue 23): each run's parameters and its gap to torch, step by step.
for name in warmup_cosine steplr_staircase epoch_schedule_step_count clip_eps class_weight_mean adam_resume_step_count; do
  .venv/bin/xreg compare "comparisons/$name.toml" --force --plot "comparisons/examples/$name.png" >/dev/null || [ $? -eq 1 ]
done
echo "wrote comparisons/examples/{warmup_cosine,steplr_staircase,epoch_schedule_step_count,clip_eps,class_weight_mean,adam_resume_step_count}.png"
