#!/bin/bash
# Throughput before (3758b25, /tmp/base_house) vs after (the working tree), each
# on its own core at the same time, then the cores swapped.
PY=/work/main/.venv/bin/python
one() {  # tree name core rep
  local tree=$1 name=$2 core=$3 rep=$4
  cd $tree
  PYTHONPATH=$tree taskset -c $core $PY benchmarks/train_throughput.py --config=configs/ptb.py:svae \
      --config.data.pad_multiple=16 --data_dir=/work/shared/data/ptb --steps=200 \
      > /tmp/tp/train_${name}_$rep.txt 2>&1
  PYTHONPATH=$tree taskset -c $core $PY benchmarks/eval_throughput.py \
      --workdir=/work/main/runs/ptb_lstm/pretrain_fb --split=test --num_importance_samples=20 \
      --max_sentences=256 --source_dir=/work/shared/data/ptb > /tmp/tp/eval_${name}_$rep.txt 2>&1
  rm -rf /tmp/tp/loop_${name}_$rep
  PYTHONPATH=$tree taskset -c $core $PY -m textvae.main --config=configs/default.py \
      --workdir=/tmp/tp/loop_${name}_$rep --config.train.num_steps=1500 \
      --config.train.log_every_steps=100 --config.train.eval_every_steps=100000 \
      --config.train.checkpoint_every_steps=100000 \
      --config.data.tfds_data_dir=/tmp/tp/tfds_$name > /tmp/tp/loop_${name}_$rep.log 2>&1
}
one /tmp/base_house before 0 1 & one /work/main after 1 1 & wait
one /tmp/base_house before 1 2 & one /work/main after 0 2 & wait
echo done
