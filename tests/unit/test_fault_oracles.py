"""The fault harness's oracles find what was planted: a lost record, a repeat, a misroute, a
reordering, a wrong feature field, a guard that moved back, counts that do not add up."""

from __future__ import annotations

from streamproc.adapters.metrics import StageMetrics
from tests.harness.load import LoadRecord
from tests.harness.oracles import (
    Expected,
    MarkSampler,
    Offline,
    Outputs,
    Positions,
    Topics,
    accounting_errors,
    compare_outputs,
    compare_progress,
    compare_state,
)

TOPICS = Topics("raw", "clean", "dups", "predictions")


LOAD = [
    LoadRecord("r/0", 0, b"k", b"", "e0", "order"),
    LoadRecord("r/1", 1, b"k", b"", "e1", "order"),
    LoadRecord("r/2", 0, b"x", b"", "e2", "invalid"),
    LoadRecord("r/3", 0, b"y", b"", "e1", "retry", "e1"),  # r/1's event sent again
]


def _outputs(**changes: object) -> Outputs:
    fields: dict[str, object] = {
        "clean": {0: ["r/0", "r/1"]},
        "duplicates": ["r/3"],
        "raw_dlq": ["r/2"],
        "clean_dlq": [],
        "predictions": ["e0", "e1"],
    }
    fields.update(changes)
    return Outputs(**fields)  # type: ignore[arg-type]


def test_outputs_where_the_truth_says_pass() -> None:
    assert compare_outputs(LOAD, _outputs()).problems() == []


def test_a_record_found_nowhere_is_lost_unless_it_expired() -> None:
    # r/1 deleted unread: its retry r/3 is the first copy read, so it comes out clean
    outputs = _outputs(clean={0: ["r/0", "r/3"]}, duplicates=[], predictions=["e0", "e1"])
    assert compare_outputs(LOAD, outputs).lost == ["r/1"]
    assert compare_outputs(LOAD, outputs, Expected(expired=frozenset({"r/1"}))).problems() == []


def test_repeats_are_counted_per_output() -> None:
    outputs = _outputs(clean={0: ["r/0", "r/1", "r/1"]}, predictions=["e0", "e1", "e1", "e1"])
    report = compare_outputs(LOAD, outputs)
    assert report.repeated == {"clean": 1, "predictions": 2}
    assert report.repeats == 3
    assert "3 repeated records" in report.problems()[0]


def test_a_retry_let_through_is_misrouted() -> None:
    outputs = _outputs(clean={0: ["r/0", "r/1", "r/3"]}, duplicates=[])
    report = compare_outputs(LOAD, outputs)
    assert [line.split(" ")[0] for line in report.misrouted] == ["r/3"]
    assert report.repeated == {"clean": 1}  # e1 twice


def test_a_retry_redis_forgot_may_pass_again_and_be_scored_again() -> None:
    """After Redis lost its state, a retry of an order it had seen may come out clean; the
    prediction of its event twice is then no repeat, a third copy still is."""
    outputs = _outputs(
        clean={0: ["r/0", "r/1", "r/3"]}, duplicates=[], predictions=["e0", "e1", "e1"]
    )
    forgot = Expected(forgotten=frozenset({"r/3"}))
    assert compare_outputs(LOAD, outputs, forgot).problems() == []
    thrice = _outputs(
        clean={0: ["r/0", "r/1", "r/3"]}, duplicates=[], predictions=["e0", "e1", "e1", "e1"]
    )
    assert compare_outputs(LOAD, thrice, forgot).repeated == {"predictions": 1}
    both = _outputs(clean={0: ["r/0", "r/1", "r/3"]}, predictions=["e0", "e1", "e1"])
    assert compare_outputs(LOAD, both, forgot).misrouted == [
        "r/3 (retry): ['clean', 'duplicates'], not duplicates"
    ]


def test_a_dead_letter_expected_by_the_case_is_no_misroute() -> None:
    outputs = _outputs(
        clean={0: ["r/0", "r/3"]}, duplicates=[], raw_dlq=["r/2", "r/1"], predictions=["e0", "e1"]
    )
    assert compare_outputs(LOAD, outputs).misrouted != []
    assert compare_outputs(LOAD, outputs, Expected(raw_dlq=frozenset({"r/1"}))).problems() == []


def test_a_clean_order_without_prediction_is_unscored() -> None:
    assert compare_outputs(LOAD, _outputs(predictions=["e0"])).unscored == ["r/1"]
    scored_anyway = compare_outputs(LOAD, _outputs(), Expected(clean_dlq=frozenset({"r/1"})))
    assert scored_anyway.unscored == ["r/1: to be dead-lettered, not scored"]


def test_a_key_whose_orders_come_out_of_order_is_reported() -> None:
    report = compare_outputs(LOAD, _outputs(clean={0: ["r/1", "r/0"]}))
    assert report.out_of_order == ["b'k': seq 0 after 1"]


def test_records_of_another_load_are_reported() -> None:
    assert compare_outputs(LOAD, _outputs(unknown=2)).problems() == [
        "2 records in the case's range not of its load"
    ]


def _offline(**features: dict[str, str]) -> Offline:
    return Offline(dict(features), {"app\x1fs\x1f5\x1f1": 3}, {0: 7})


def test_equal_state_passes_whatever_the_wall_clock() -> None:
    online = {"k": {"t": "5", "o|0": "7", "w": "123"}}
    report = compare_state(
        online, {"app\x1fs\x1f5\x1f1": 3}, _offline(k={"t": "5", "o|0": "7", "w": "0"})
    )
    assert report.problems() == []


def test_state_differences_are_found_and_classified() -> None:
    online = {"k": {"b|a|1h|1": "2|3.00000000000001|0|1|2", "l|c": '"DE"'}, "extra": {}}
    offline = _offline(k={"b|a|1h|1": "2|3|0|1|2", "l|c": '"FR"'}, gone={"t": "1"})
    report = compare_state(online, {"app\x1fs\x1f5\x1f1": 2}, offline)
    assert report.missing == ["gone"]
    assert report.extra == ["extra"]
    assert report.differing == ['k l|c: "DE" != "FR"']
    assert report.rounding == ["k b|a|1h|1: 2|3.00000000000001|0|1|2 != 2|3|0|1|2"]
    assert report.unit_counts == ["app/s/5/1: 2 != 3"]
    assert report.errors == 5  # noqa: PLR2004


def test_guards_may_not_move_back_on_one_redis_server() -> None:
    sampler = MarkSampler()
    sampler.observe("run-1", {("k", 0): 5}, {0: 5})
    sampler.observe("run-1", {("k", 0): 6}, {0: 6})
    assert sampler.regressions == []
    sampler.observe("run-1", {}, {0: 4})
    assert sampler.regressions == ["k o|0: 6 -> None", "unit guard 0: 6 -> 4"]
    sampler.observe("run-2", {}, {})  # a new server: it starts from nothing
    assert len(sampler.regressions) == 2  # noqa: PLR2004


def test_guards_at_quiescence_are_where_the_commits_put_them() -> None:
    sampler = MarkSampler()
    sampler.observe("run", {}, {})
    positions = [Positions("raw", {0: 8}, {0: 8}), Positions("clean", {0: 3}, {0: 4})]
    offline = _offline(k={"o|0": "7"})
    report = compare_progress(sampler, positions, ({0: 9}, {0: 7}), offline)
    assert report.unconsumed == ["clean[0] committed 3 of 4"]
    assert report.mismatched == ["feature mark [0] = 9, the cut says 7 (committed - 1 = 7)"]


def test_accounting_adds_up_outputs_and_dead_letters_per_source() -> None:
    metrics = StageMetrics()
    metrics.consumed.labels("raw").inc(10)
    metrics.produced.labels("clean").inc(6)
    metrics.produced.labels("dups").inc(2)
    metrics.duplicates.labels("retry").inc(2)
    metrics.dead_letters.labels("raw", "bad").inc(2)
    metrics.consumed.labels("clean").inc(6)
    metrics.produced.labels("predictions").inc(5)
    metrics.dead_letters.labels("clean", "bad").inc(1)
    assert accounting_errors(metrics.exposition().decode(), TOPICS) == []
    metrics.consumed.labels("raw").inc(1)
    assert accounting_errors(metrics.exposition().decode(), TOPICS) == [
        "raw: consumed 11 != outputs 8 + dead letters 2"
    ]


def test_the_first_copy_of_a_form_whose_order_never_reached_dedupe_comes_out_clean() -> None:
    """An order retention deleted unread (or the clean stage dead-lettered): its first
    resubmission is the form's first sighting, the next one its duplicate."""
    load = [
        LoadRecord("r/0", 0, b"k", b"", "e0", "order"),
        LoadRecord("r/1", 1, b"k", b"", "e1", "resubmission", "e0"),
        LoadRecord("r/2", 2, b"k", b"", "e2", "resubmission", "e0"),
    ]
    gone = Expected(expired=frozenset({"r/0"}))
    first_clean = _outputs(clean={0: ["r/1"]}, duplicates=["r/2"], raw_dlq=[], predictions=["e1"])
    assert compare_outputs(load, first_clean, gone).problems() == []
    assert compare_outputs(load, first_clean).lost == ["r/0"]  # without the deletion: lost
    both_dropped = _outputs(clean={}, duplicates=["r/1", "r/2"], raw_dlq=[], predictions=[])
    assert [m.split(" ")[0] for m in compare_outputs(load, both_dropped, gone).misrouted] == ["r/1"]
