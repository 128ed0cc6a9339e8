"""Azure Functions 2019 trace format: the reader on the shipped sample and on malformed
files, the writer's round trip, and the generator's statistics."""

import shutil

import numpy as np
import pytest

from mfg.serverless.workloads import (MINUTES, SAMPLE_DIR, TRIGGER_SHARE, TraceFormatError, generate, invocation_file,
                           read_trace, write_trace)


def test_shipped_sample_reads():
    trace = read_trace(SAMPLE_DIR)
    assert trace.invocations.shape == (trace.num_functions, MINUTES) and trace.num_functions >= 100
    assert np.all(trace.invocations >= 0) and set(trace.triggers) <= set(TRIGGER_SHARE)
    assert np.all(np.isfinite(trace.durations)) and len(trace.memory) == len(set(trace.apps))
    np.testing.assert_allclose(trace.rates_per_second(), trace.invocations / 60.0)


def test_writer_and_reader_round_trip(tmp_path):
    trace = generate(20, seed=3)
    back = read_trace(write_trace(trace, tmp_path, day=7), day=7)
    np.testing.assert_array_equal(back.invocations, trace.invocations)
    np.testing.assert_array_equal(back.functions, trace.functions)
    np.testing.assert_allclose(back.durations, trace.durations, rtol=1e-5)


@pytest.fixture
def sample_copy(tmp_path):
    shutil.copytree(SAMPLE_DIR, tmp_path / "t")
    return tmp_path / "t"


def rewrite(folder, edit):
    path = folder / invocation_file(1)
    lines = path.read_text().splitlines()
    path.write_text("\n".join(edit(lines)) + "\n")


@pytest.mark.parametrize("edit, message", [
    (lambda ls: [ls[0].replace("HashApp,", "App,")] + ls[1:], r"header does not match .* missing \['HashApp'\]"),
    (lambda ls: [",".join(ls[0].split(",")[:-1])] + ls[1:], r"1443 columns, expected 1444"),
    (lambda ls: ls[:1] + [ls[1].rsplit(",", 1)[0]] + ls[2:], r"line 2: 1443 fields, expected 1444"),
    (lambda ls: ls[:2] + [ls[2].rsplit(",", 1)[0] + ",-3"] + ls[3:], r"line 3, column '1440': '-3' must be"),
    (lambda ls: ls[:2] + [ls[2].rsplit(",", 1)[0] + ",x"] + ls[3:], r"line 3, column '1440': 'x' is not a non-negative integer"),
    (lambda ls: ls[:1] + [",".join(ls[1].split(",")[:3] + ["cron"] + ls[1].split(",")[4:])] + ls[2:],
     r"line 2, column 'Trigger': 'cron' is not one of"),
    (lambda ls: ls[:1], r"no function rows"),
    (lambda ls: [], r"empty file"),
])
def test_malformed_files_are_reported_with_file_line_and_column(sample_copy, edit, message):
    rewrite(sample_copy, edit)
    with pytest.raises(TraceFormatError, match=message):
        read_trace(sample_copy)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(TraceFormatError, match="invocations_per_function_md.anon.d01.csv: no such trace file"):
        read_trace(tmp_path)


@pytest.fixture(scope="module")
def big():
    return generate(3000, seed=1)


def test_generator_matches_functions_per_app_and_trigger_mix(big):
    _, per_app = np.unique(big.apps, return_counts=True)
    shares = [np.mean(per_app == 1), np.mean(per_app == 2), np.mean(per_app == 3)]
    np.testing.assert_allclose(shares, [0.54, 0.16, 0.10], atol=0.03)
    for trigger, share in TRIGGER_SHARE.items():
        assert abs(np.mean(big.triggers == trigger) - share) < 0.03, trigger


def test_generator_popularity_spans_orders_of_magnitude(big):
    apps, index = np.unique(big.apps, return_inverse=True)
    daily = np.bincount(index, weights=big.invocations.sum(1))
    assert abs(np.mean(daily <= 24) - 0.45) < 0.05       # at most once an hour
    assert abs(np.mean(daily <= 1440) - 0.81) < 0.05     # at most once a minute
    top = np.sort(daily)[::-1]
    assert top[: int(0.19 * len(apps))].sum() / top.sum() > 0.99   # ~19% of apps: >99% of calls
    assert np.log10(top[0] / max(top[top > 0][-1], 1)) > 6


def test_generator_daily_cycle_durations_and_burstiness(big):
    total = big.invocations[big.triggers != "timer"].sum(0).astype(float)
    hourly = total.reshape(24, 60).sum(1)
    assert 1.6 < hourly.max() / hourly.min() < 2.6           # peaks about twice the trough
    ln_seconds = np.log(big.durations[:, 0] / 1e3)
    assert abs(ln_seconds.mean() - (-0.38)) < 0.15 and abs(ln_seconds.std() - 2.36) < 0.15
    busy = big.invocations.sum(1) > 5 * MINUTES
    cv = big.invocations.std(1) / np.maximum(big.invocations.mean(1), 1e-12)
    timers = busy & (big.triggers == "timer")
    others = busy & (big.triggers != "timer")
    assert np.median(cv[timers]) < 0.05 and np.median(cv[others]) > 1.0


def test_generate_functions_keeps_exactly_the_requested_invoked_functions():
    from mfg.serverless.workloads import generate_functions

    trace = generate_functions(50, seed=4)
    assert trace.num_functions == 50 and np.all(trace.invocations.sum(1) > 0)
    assert set(trace.memory) <= set(trace.apps)


def test_another_day_holds_the_same_functions_with_new_bursts():
    """day = d > 0: the same apps, functions, triggers, durations and timers (a timer fires
    at the same minutes every day); the bursty functions' counts are redrawn, with the same
    daily volume on average; day 0 is the original draw."""
    first, same, other = generate(300, seed=5), generate(300, seed=5, day=0), generate(300, seed=5, day=1)
    np.testing.assert_array_equal(same.invocations, first.invocations)
    for field in ("owners", "apps", "functions", "triggers"):
        np.testing.assert_array_equal(getattr(other, field), getattr(first, field))
    np.testing.assert_array_equal(np.delete(other.durations, 1, axis=1), np.delete(first.durations, 1, axis=1))
    np.testing.assert_array_equal(other.durations[:, 1], other.invocations.sum(1))       # Count: that day's calls
    timers = first.triggers == "timer"
    np.testing.assert_array_equal(other.invocations[timers], first.invocations[timers])
    bursty = ~timers & (first.invocations.sum(1) > 100)
    assert bursty.sum() > 20 and np.all((other.invocations[bursty] != first.invocations[bursty]).any(1))
    ratio = other.invocations[bursty].sum(1) / first.invocations[bursty].sum(1)
    assert 0.8 < np.median(ratio) < 1.25, np.median(ratio)
    with pytest.raises(ValueError, match="day must be an int >= 0"):
        generate(3, seed=5, day=-1)


def test_another_day_of_generated_functions_lines_up_row_for_row():
    """generate_functions(..., day=1) keeps day 0's functions in day 0's rows, idle or not,
    and Workload.from_trace(keep_idle=True) keeps every row: the pools line up."""
    from mfg.serverless.settings import Workload
    from mfg.serverless.workloads import generate_functions

    today, tomorrow = generate_functions(200, seed=4), generate_functions(200, seed=4, day=1)
    np.testing.assert_array_equal(tomorrow.functions, today.functions)
    assert (tomorrow.invocations.sum(1) == 0).any()          # some rare function is idle on day 1
    pool = Workload.from_trace(tomorrow, max_containers=200, keep_idle=True)
    assert pool.num_functions == 200
    np.testing.assert_array_equal(pool.service_mean, Workload.from_trace(today, max_containers=200).service_mean)
    assert Workload.from_trace(tomorrow, max_containers=200).num_functions < 200     # the default drops idle rows
