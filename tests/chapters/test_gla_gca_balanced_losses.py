"""Tests for paperlab.statistical_learning_causality.gla_gca_balanced_losses."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from paperlab.claims import ClaimFailed
from paperlab.statistical_learning_causality import gla_gca_balanced_losses as ch


def _problem(n=40, c=5, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(n, c, generator=gen, dtype=dtype)
    labels = torch.arange(n) % c
    counts = torch.tensor([40.0, 20.0, 10.0, 5.0, 2.0], dtype=dtype)[:c]
    return scores, labels, counts / counts.sum()


# ----------------------------------------------------------------------------------
# Generalised cross-entropy
# ----------------------------------------------------------------------------------


def test_gce_endpoints_are_log_loss_and_mae():
    p = torch.tensor([0.05, 0.3, 0.9, 1.0], dtype=torch.float64)
    assert torch.allclose(ch.generalized_cross_entropy(p.log(), 0.0), -p.log())
    assert torch.allclose(ch.generalized_cross_entropy(p.log(), 1.0), 1 - p)


def test_gce_tends_to_log_loss_as_q_shrinks():
    p = torch.tensor([0.01, 0.5], dtype=torch.float64)
    small = ch.generalized_cross_entropy(p.log(), 1e-7)
    assert torch.allclose(small, -p.log(), rtol=1e-5)


def test_gce_is_decreasing_in_probability_and_bounded_by_one_over_q():
    p = torch.linspace(1e-6, 1.0, 50, dtype=torch.float64)
    values = ch.generalized_cross_entropy(p.log(), 0.3)
    assert bool((values[1:] < values[:-1]).all())
    assert float(values.max()) <= 1 / 0.3


def test_gce_accepts_one_q_per_model():
    log_p = torch.log(torch.tensor([[0.2, 0.7], [0.2, 0.7]]))
    q = torch.tensor([[0.0], [1.0]])
    out = ch.generalized_cross_entropy(log_p, q)
    assert torch.allclose(out[0], -log_p[0])
    assert torch.allclose(out[1], 1 - log_p[1].exp())


# ----------------------------------------------------------------------------------
# The family and its members, against independent computations
# ----------------------------------------------------------------------------------


def test_comp_sum_with_defaults_is_cross_entropy():
    scores, labels, _ = _problem()
    assert torch.allclose(
        ch.comp_sum_loss(scores, labels), F.cross_entropy(scores, labels)
    )


def test_la_loss_is_cross_entropy_on_shifted_scores():
    scores, labels, prior = _problem()
    expected = F.cross_entropy(scores + prior.log(), labels)
    assert torch.allclose(ch.gla_loss(scores, labels, prior, q=0.0), expected)


def test_gla_with_uniform_prior_is_plain_gce():
    scores, labels, _ = _problem()
    uniform = torch.full((5,), 0.2, dtype=torch.float64)
    log_p = F.log_softmax(scores, 1)[torch.arange(len(labels)), labels]
    expected = ((1 - log_p.exp() ** 0.3) / 0.3).mean()
    assert torch.allclose(ch.gla_loss(scores, labels, uniform, q=0.3), expected)


def test_gca_matches_an_example_by_example_loop():
    scores, labels, prior = _problem()
    margins = ch.confidence_margins(prior, 0.5)
    q, c = 0.3, prior.numel()
    total = 0.0
    for h, y in zip(scores, labels, strict=True):
        p_true = torch.softmax(h / margins[y], 0)[y]
        total += (1 / (c * prior[y])) * (1 - p_true**q) / q
    expected = total / len(labels)
    assert torch.allclose(ch.gca_loss(scores, labels, prior, margins, q), expected)


def test_gca_without_margins_is_weighted_cross_entropy():
    scores, labels, prior = _problem()
    ones = torch.ones(5, dtype=torch.float64)
    weight = 1 / (5 * prior)
    per_example = F.cross_entropy(scores, labels, weight=weight, reduction="none")
    got = ch.gca_loss(scores, labels, prior, ones, q=0.0)
    assert torch.allclose(got, per_example.mean())


def test_weighted_loss_equals_class_averaged_loss():
    # With weights 1/(c p_y) and p the empirical frequencies, the example mean is the
    # mean over classes of the per-class mean loss: the balanced surrogate.
    gen = torch.Generator().manual_seed(3)
    labels = torch.tensor([0] * 12 + [1] * 5 + [2] * 3)
    scores = torch.randn(len(labels), 3, generator=gen, dtype=torch.float64)
    prior = torch.bincount(labels).double() / len(labels)
    per_example = F.cross_entropy(scores, labels, reduction="none")
    per_class = torch.stack([per_example[labels == k].mean() for k in range(3)])
    got = ch.gca_loss(scores, labels, prior, torch.ones(3, dtype=torch.float64), 0.0)
    assert torch.allclose(got, per_class.mean())


def test_comp_sum_gradient_matches_finite_differences():
    scores, labels, prior = _problem(n=6)
    scores = scores.clone().requires_grad_()

    def loss(s):
        return ch.comp_sum_loss(
            s,
            labels,
            log_shift=prior.log(),
            example_weight=1 / (5 * prior[labels]),
            example_scale=ch.confidence_margins(prior, 0.25)[labels],
            q=0.3,
        )

    assert torch.autograd.gradcheck(loss, (scores,))


def test_batched_models_equal_separate_calls():
    scores, labels, prior = _problem()
    stacked = torch.stack([scores, 2 * scores])
    shift = torch.stack([prior.log(), torch.zeros(5, dtype=torch.float64)])
    q = torch.tensor([0.0, 0.7], dtype=torch.float64)
    got = ch.comp_sum_loss(stacked, labels, log_shift=shift, q=q)
    first = ch.comp_sum_loss(scores, labels, log_shift=prior.log(), q=0.0)
    second = ch.comp_sum_loss(2 * scores, labels, q=0.7)
    assert torch.allclose(got, torch.stack([first, second]))


def _minimise(risk, c):
    h = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [h], max_iter=200, tolerance_grad=1e-12, line_search_fn="strong_wolfe"
    )

    def closure():
        optimizer.zero_grad()
        value = risk(h)
        value.backward()
        return value

    optimizer.step(closure)
    return h.detach()


@pytest.mark.parametrize("which", ["gla", "gca"])
def test_minimiser_of_conditional_risk_is_the_balanced_bayes_classifier(which):
    # For one input x with posterior eta, the score vector minimising the expected
    # loss sum_y eta_y l(h, y) must rank classes by eta_y / p_y (balanced Bayes),
    # not by eta_y. Three "examples" share the scores h, one per label, weighted
    # by eta (times 3, since the loss averages over examples).
    prior = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    eta = torch.tensor([0.55, 0.3, 0.15], dtype=torch.float64)
    labels = torch.arange(3)
    if which == "gla":
        extra = {"log_shift": prior.log(), "example_weight": 3 * eta}
    else:
        extra = {"example_weight": 3 * eta / (3 * prior)}

    h = _minimise(lambda h: ch.comp_sum_loss(h.expand(3, 3), labels, **extra), 3)
    assert int(eta.argmax()) == 0
    assert int(h.argmax()) == int((eta / prior).argmax()) == 2
    # Closed form for the log loss: h = log(eta / p) up to a constant (both cases).
    target = torch.log(eta / prior)
    assert torch.allclose(h - h.mean(), target - target.mean(), atol=1e-5)


# ----------------------------------------------------------------------------------
# Margins, data, metrics
# ----------------------------------------------------------------------------------


def test_confidence_margins_grow_for_rare_classes():
    _, _, prior = _problem()
    rho = ch.confidence_margins(prior, 0.25)
    assert float(rho[0]) == pytest.approx(1.0)
    assert bool((rho[1:] > rho[:-1]).all())
    assert float(rho[-1]) == pytest.approx(float((prior[0] / prior[-1]) ** 0.25))
    assert torch.equal(ch.confidence_margins(prior, 0.0), torch.ones_like(prior))


def test_class_counts_follow_the_exponential_profile():
    counts = ch.class_counts(500, 100.0, 10)
    assert counts[0] == 500 and counts[-1] == 5
    assert np.all(np.diff(counts) <= 0)
    assert np.array_equal(ch.class_counts(7, 1.0, 4), [7, 7, 7, 7])
    assert ch.class_counts(3, 1000.0, 3)[-1] == 1


def test_make_data_has_the_requested_sizes_and_prior():
    config = ch.Config(
        dim=7,
        n_head=30,
        imbalance=10.0,
        n_classes=4,
        n_val_per_class=3,
        n_test_per_class=5,
    )
    split = ch.make_data(config, np.random.default_rng(0))
    counts = ch.class_counts(30, 10.0, 4)
    assert split.X_train.shape == (counts.sum(), 7)
    assert np.array_equal(torch.bincount(split.y_train).numpy(), counts)
    assert np.array_equal(torch.bincount(split.y_test).numpy(), [5, 5, 5, 5])
    assert split.X_val.shape == (12, 7)
    assert torch.allclose(split.prior.sum(), torch.tensor(1.0))


def test_balanced_error_and_per_class_accuracy():
    labels = np.array([0, 0, 0, 0, 1, 2])
    predictions = np.array([[0, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 2]])
    accuracy = ch.per_class_accuracy(predictions, labels, 3)
    assert np.allclose(accuracy, [[1, 0, 0], [0.5, 1, 1]])
    assert np.allclose(ch.balanced_error(predictions, labels, 3), [2 / 3, 1 / 6])
    absent = ch.per_class_accuracy(np.array([0, 0]), np.array([0, 0]), 2)
    assert np.isnan(absent[1]) and absent[0] == 1


def test_training_reaches_low_training_error_and_is_deterministic():
    config = ch.Config(dim=10, n_head=40, imbalance=4.0, n_classes=3, separation=4.0)
    split = ch.make_data(config, np.random.default_rng(1))
    specs = [ch.LossSpec("CE"), ch.LossSpec("GCA", weighted=True, margin_exponent=0.5)]
    W, b = ch.train_linear_models(split, specs, epochs=200, lr=0.05)
    W2, _ = ch.train_linear_models(split, specs, epochs=200, lr=0.05)
    assert W.shape == (2, 3, 10) and b.shape == (2, 3)
    assert torch.equal(W, W2)
    errors = ch.balanced_error(ch._predict(W, b, split.X_train), split.y_train, 3)
    assert np.all(errors < 0.1)


def test_written_out_adam_matches_torch_optim_adam():
    config = ch.Config(dim=6, n_head=30, imbalance=5.0, n_classes=3)
    split = ch.make_data(config, np.random.default_rng(4))
    specs = [
        ch.LossSpec("LA", tau=1.0),
        ch.LossSpec("GCA", weighted=True, margin_exponent=0.5, q=0.3),
    ]
    W, b = ch.train_linear_models(split, specs, epochs=40, lr=0.05)

    shift, weight, scale, q = ch._family_tensors(specs, split.y_train, split.prior)
    W_ref = torch.zeros(2, 3, 6, requires_grad=True)
    b_ref = torch.zeros(2, 1, 3, requires_grad=True)
    optimizer = torch.optim.Adam([W_ref, b_ref], lr=0.05)
    for _ in range(40):
        optimizer.zero_grad()
        scores = split.X_train @ W_ref.transpose(1, 2) + b_ref
        ch._comp_sum_loss(
            scores, split.y_train, shift, weight, scale, q
        ).sum().backward()
        optimizer.step()
    assert torch.allclose(W, W_ref.detach(), atol=1e-5)
    assert torch.allclose(b, b_ref.detach().squeeze(1), atol=1e-5)


def test_weight_bound_is_respected():
    config = ch.Config(dim=10, n_head=40, imbalance=4.0, n_classes=3)
    split = ch.make_data(config, np.random.default_rng(2))
    W, _ = ch.train_linear_models(
        split, [ch.LossSpec("CE")], epochs=100, lr=0.1, weight_bound=0.5
    )
    assert float(W.flatten(1).norm(dim=1).max()) <= 0.5 + 1e-5


def test_baseline_variant_removes_both_mechanisms():
    fixed, gca = ch.loss_specs(ch.Config(variant="baseline"))
    assert fixed[3].tau == 0.0
    assert all(not s.weighted and s.margin_exponent == 0.0 for s in gca)
    fixed, gca = ch.loss_specs(ch.Config())
    assert fixed[3].tau == 1.0 and all(s.weighted for s in gca)


# ----------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------


def test_bad_inputs_raise_clear_errors():
    scores, labels, prior = _problem()
    with pytest.raises(TypeError, match="scores must be a floating"):
        ch.comp_sum_loss(scores.numpy(), labels)
    with pytest.raises(TypeError, match="labels must be a torch.Tensor of dtype int64"):
        ch.comp_sum_loss(scores, labels.int())
    with pytest.raises(ValueError, match="labels must have shape"):
        ch.comp_sum_loss(scores, labels[:-1])
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        ch.comp_sum_loss(scores, labels + 1)
    with pytest.raises(ValueError, match="log_shift must broadcast"):
        ch.comp_sum_loss(scores, labels, log_shift=torch.zeros(4))
    with pytest.raises(ValueError, match="example_scale must be positive"):
        ch.comp_sum_loss(scores, labels, example_scale=0.0)
    with pytest.raises(ValueError, match="q must be >= 0"):
        ch.generalized_cross_entropy(scores, -0.1)
    with pytest.raises(ValueError, match="prior must be positive and sum to 1"):
        ch.gla_loss(scores, labels, 2 * prior, q=0.3)
    with pytest.raises(ValueError, match="prior must have shape"):
        ch.gla_loss(scores, labels, prior[:3] / prior[:3].sum(), q=0.3)
    with pytest.raises(ValueError, match="margins must be a torch.Tensor of shape"):
        ch.gca_loss(scores, labels, prior, torch.ones(3), q=0.3)
    with pytest.raises(ValueError, match="exponent must be >= 0"):
        ch.confidence_margins(prior, -1.0)


def test_bad_configs_and_arguments_raise():
    with pytest.raises(ValueError, match="variant must be one of"):
        ch.Config(variant="gla")
    with pytest.raises(ValueError, match="imbalance must be >= 1"):
        ch.Config(imbalance=0.5)
    with pytest.raises(TypeError, match="n_seeds must be an integer"):
        ch.Config(n_seeds=2.0)
    with pytest.raises(TypeError, match="margin_exponents must be a non-empty tuple"):
        ch.Config(margin_exponents=[0.5])
    with pytest.raises(ValueError, match="margin_exponents entry must be >= 0"):
        ch.Config(margin_exponents=(0.5, -1.0))
    with pytest.raises(ValueError, match="q must be >= 0"):
        ch.LossSpec("x", q=-1.0)
    with pytest.raises(TypeError, match="config must be a Config"):
        ch.run_experiment({"variant": "mechanism"})
    with pytest.raises(ValueError, match="specs must be a non-empty sequence"):
        split = ch.make_data(ch.Config(dim=3, n_head=5), np.random.default_rng(0))
        ch.train_linear_models(split, [], epochs=1, lr=0.1)
    with pytest.raises(ValueError, match="predictions must have shape"):
        ch.per_class_accuracy(np.zeros(3), np.zeros(4), 2)
    with pytest.raises(TypeError, match="result must be a Result"):
        ch.check_claim(None)


# ----------------------------------------------------------------------------------
# The claim and its counter-test
# ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mechanism_result():
    return ch.run_experiment(ch.Config())


@pytest.fixture(scope="module")
def baseline_result():
    return ch.run_experiment(ch.Config(variant="baseline"))


def test_claim_holds_for_the_papers_losses(mechanism_result):
    ch.check_claim(mechanism_result)
    assert set(mechanism_result.chosen_exponent) <= set(ch.Config().margin_exponents)


def test_claim_fails_when_the_mechanisms_are_removed(baseline_result):
    with pytest.raises(ClaimFailed, match="points below cross-entropy"):
        ch.check_claim(baseline_result)


def test_shared_baselines_do_not_depend_on_the_variant(
    mechanism_result, baseline_result
):
    for name in ("CE", "weighted CE", "LA"):
        assert np.allclose(
            mechanism_result.balanced_error[name], baseline_result.balanced_error[name]
        )


def test_all_losses_agree_on_balanced_data():
    result = ch.run_experiment(
        ch.Config(imbalance=1.0, n_seeds=2, n_head=150, margin_exponents=(0.0, 0.5))
    )
    ch.check_balanced_agreement(result)
    with pytest.raises(ClaimFailed, match="needs imbalance == 1"):
        ch.check_balanced_agreement(replace(result, config=ch.Config()))


def test_balanced_agreement_fails_when_one_loss_drifts(mechanism_result):
    balanced = replace(mechanism_result, config=ch.Config(imbalance=1.0))
    with pytest.raises(ClaimFailed, match="spread over"):
        ch.check_balanced_agreement(balanced)
