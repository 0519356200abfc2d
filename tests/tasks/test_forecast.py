"""lstmkit forecast: run files, baselines against hand computations, saved runs, bad files, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import mean_absolute_error, mean_squared_error

from lstmkit.data import series as ts
from lstmkit.data.errors import DataError
from lstmkit.tasks import forecast

TINY = dict(epochs=2, hidden=8, lookback=6, progress=False)


def write_csv(path, n=160, *, close=None, header="Date,Open,Close,Volume", start="2020-01-01"):
    """A daily CSV whose Close is a positive random walk with a weekly wiggle (seeded)."""
    rng = np.random.default_rng(7)
    if close is None:
        close = 100 + np.cumsum(rng.normal(0, 1, n)) + 3 * np.sin(np.arange(n) * 2 * np.pi / 7)
    days = np.datetime64(start) + np.arange(len(close))
    lines = [header] + [f"{d},{c + 0.5:.4f},{c:.4f},{1000 + k}" for k, (d, c) in enumerate(zip(days, close))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tiny training run (horizon 3), shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("forecast")
    data = write_csv(root / "prices.csv")
    result = forecast.train(data, out=root / "run", horizon=3, seed=1, **TINY)
    return data, result


def cli_main(argv):
    """lstmkit.cli.main, or a skip while another task's module (which the CLI imports) is missing."""
    from lstmkit import cli

    try:
        cli.build_parser()
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("lstmkit.tasks.") and exc.name != "lstmkit.tasks.forecast":
            pytest.skip(f"the CLI imports every task module and {exc.name} does not exist yet")
        raise
    return cli.main(argv)


# -- the run folder ---------------------------------------------------------------------------------

def test_run_writes_model_metrics_report_and_pictures(run):
    _, result = run
    names = {p.name for p in result.files}
    assert {"model.safetensors", "metrics.json", "report.md", "learning_curves.png", "forecast.png"} <= names
    assert "checkpoint.safetensors" not in names
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    for key in ("mae", "rmse", "mape", "mase", "per_step", "baseline", "data", "split", "seconds", "config"):
        assert key in metrics
    assert set(metrics["baseline"]) == {"naive", "seasonal_naive"}
    assert set(metrics["per_step"]) == {"t+1", "t+2", "t+3"}
    assert metrics["data"]["column"] == "Close" and metrics["data"]["column_chosen"] == "the column named Close"
    assert metrics["data"]["transform"] == "log-return"          # positive prices: log-returns by default
    assert metrics["mae"] == pytest.approx(np.mean([s["mae"] for s in metrics["per_step"].values()]))
    report = (result.run_dir / "report.md").read_text()
    assert "naive forecast" in report and "| LSTM |" in report
    for png in ("forecast.png", "learning_curves.png"):
        assert (result.run_dir / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_figures_match_an_independent_oracle(run):
    """Forecast each test origin one by one through the public API and score with sklearn; the
    naive baseline by hand from the file's column."""
    data, result = run
    predictor = forecast.load(result.run_dir)
    close = np.loadtxt(data, delimiter=",", skiprows=1, usecols=2)
    n = len(close)
    test_start = n - round(n * 0.2)
    origins = range(test_start - 1, n - 3)
    predicted = np.array([predictor.forecast(close[:t + 1]) for t in origins])
    actual = np.array([close[t + 1:t + 4] for t in origins])
    naive = np.array([[close[t]] * 3 for t in origins])
    m = result.metrics
    assert m["mae"] == pytest.approx(np.mean([mean_absolute_error(actual[:, k], predicted[:, k]) for k in range(3)]))
    assert m["rmse"] == pytest.approx(np.mean([mean_squared_error(actual[:, k], predicted[:, k]) ** 0.5
                                               for k in range(3)]))
    assert m["baseline"]["naive"]["mae"] == pytest.approx(np.abs(naive - actual).mean())
    train_end = n - round(n * 0.2) - round(n * 0.1)
    season = m["data"]["season"]
    assert season == 7                                          # daily dates over under two years
    scale = np.abs(close[season:train_end] - close[:train_end - season]).mean()
    assert m["baseline"]["naive"]["mase"] == pytest.approx(np.abs(naive - actual).mean() / scale)


def test_saved_run_predicts_what_the_trained_model_predicts(run):
    data, result = run
    loaded = forecast.load(result.run_dir)
    fresh = forecast.Predictor(result.model, loaded.config)
    close = np.loadtxt(data, delimiter=",", skiprows=1, usecols=2)
    for end in (20, 90, len(close)):
        np.testing.assert_array_equal(loaded.forecast(close[:end]), fresh.forecast(close[:end]))
    window = loaded.window(close)
    assert torch.equal(loaded.model(window), result.model(window))
    np.testing.assert_array_equal(loaded.forecast_file(data), loaded.forecast(close))


def test_same_seed_same_metrics(tmp_path):
    data = write_csv(tmp_path / "p.csv", n=120)
    first = forecast.train(data, out=tmp_path / "a", seed=3, **TINY).metrics
    second = forecast.train(data, out=tmp_path / "b", seed=3, **TINY).metrics
    first.pop("seconds"), second.pop("seconds")
    assert first == second


def test_predict_lines_and_inspect_input(run):
    data, result = run
    predictor = forecast.load(result.run_dir)
    lines = predictor.predict_lines([], file=str(data))
    assert [line.split("\t")[0] for line in lines] == ["t+1", "t+2", "t+3"]
    assert predictor.predict_lines([str(data)]) == lines          # a CSV given as INPUT
    numbers = [f"{v:.4f}" for v in 100 + np.arange(10.0)]
    assert len(predictor.predict_lines([",".join(numbers[:5]), *numbers[5:]])) == 3
    layer, x, labels = predictor.inspect_input(str(data))
    assert x.shape == (1, 6, 1) and len(labels) == 6 and labels[-1] == "2020-06-08"
    assert layer is predictor.model.rnn
    _, x, labels = predictor.inspect_input(",".join(numbers))
    assert x.shape == (1, 6, 1) and labels[0] == "t-5" and labels[-1] == "t"
    with pytest.raises(ValueError, match="at least 7 values"):
        predictor.forecast([1.0, 2.0, 3.0])


def test_features_test_file_levels_and_gru(tmp_path):
    data = write_csv(tmp_path / "train.csv", n=100)
    later = write_csv(tmp_path / "later.csv", n=30, start="2020-04-10")
    result = forecast.train(data, test=later, out=tmp_path / "run", features="Volume", transform="levels",
                            cell="gru", **TINY)
    assert result.metrics["data"]["test_rows"] == 30 and result.metrics["data"]["features"] == ["Volume"]
    predictor = forecast.load(result.run_dir)
    assert predictor.forecast(np.ones((10, 2))).shape == (1,)
    with pytest.raises(ValueError, match="also reads features"):
        predictor.forecast(np.ones(10))


# -- series helpers against hand computations -------------------------------------------------------

def test_changes_invert_and_seasonal_naive_by_hand():
    levels = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    np.testing.assert_allclose(ts.to_changes(levels, "diff")[1:], [1, 2, 4, 8])
    np.testing.assert_allclose(ts.to_changes(levels, "log-return")[1:], np.log(2) * np.ones(4))
    np.testing.assert_allclose(ts.from_changes([4.0], [[4.0, 8.0]], "diff"), [[8, 16]])
    np.testing.assert_allclose(ts.from_changes([4.0], [[np.log(2), np.log(2)]], "log-return"), [[8, 16]])
    series = np.arange(10.0) * 10
    # season 3, origin 5: steps 1..3 -> rows 3, 4, 5 (a season back); step 4 (row 9) -> row 3 (two back)
    np.testing.assert_array_equal(ts.seasonal_naive(series, np.array([5]), 4, 3), [[30, 40, 50, 30]])
    np.testing.assert_array_equal(ts.seasonal_naive(series, np.array([5]), 2, 1), [[50, 50]])


def test_embedded_sp500():
    dates, close = ts.sp500_close()
    assert len(dates) == len(close) == 5031
    assert (dates[0], dates[-1], close[0], close[-1]) == ("1999-01-04", "2018-12-31", 1228.10, 2506.85)


def test_split_and_origins():
    split = ts.split_rows(100, 0.1, 0.2)
    assert (split.train_end, split.val_end, split.n) == (70, 80, 100)
    test = split.origins("test", lookback=5, horizon=2, offset=1)
    assert test[0] == 79 and test[-1] == 97                     # targets 80..99 all in the test span
    assert split.origins("train", 5, 2, 1)[0] == 5              # rows 1..5 hold changes
    assert split.origins("val", 5, 2, 1)[-1] == 77


@pytest.mark.parametrize("dates, season", [
    (["1949-01", "1949-02", "1949-03", "1949-04"], 12),
    ([f"{y}" for y in range(1700, 1720)], 1),
    ([str(d) for d in np.datetime64("1981-01-01") + np.arange(800)], 365),
    ([str(d) for d in np.datetime64("1981-01-01") + np.arange(100)], 7),
    (["19580329", "19580405", "19580412", "19580419"], 52),
    (["1/4/1999", "1/5/1999", "1/6/1999", "1/7/1999", "1/8/1999", "1/11/1999", "1/12/1999"], 1),
    (["a", "b", "c"], 1),
])
def test_season_guess(dates, season):
    assert ts.guess_season(dates)[0] == season


def test_interpolate_fills_gaps(tmp_path):
    path = tmp_path / "gaps.csv"
    path.write_text("date,co2\n1,10\n2,\n3,14\n4,16\n")
    values = ts.read_series(path, fill="interpolate")
    np.testing.assert_allclose(values.target, [10, 12, 14, 16])
    assert values.filled == 1 and values.date_column == "date"


# -- bad files --------------------------------------------------------------------------------------

def bad_cases(tmp_path):
    """(name, path, extra options, expected line, expected column, words in the message)."""
    good = write_csv(tmp_path / "good.csv", n=60)
    text = good.read_text().splitlines()
    nonnumeric = tmp_path / "nonnumeric.csv"
    nonnumeric.write_text("\n".join(text[:9] + [text[9].replace(text[9].split(",")[2], "n/a")] + text[10:]) + "\n")
    blank = tmp_path / "blank.csv"
    blank.write_text("\n".join(text[:5] + [",".join(text[5].split(",")[:2] + ["", "1"])] + text[6:]) + "\n")
    negative = write_csv(tmp_path / "negative.csv", n=60, close=np.linspace(5, -5, 60))
    return [
        ("missing file", tmp_path / "nope.csv", {}, None, None, "no such file"),
        ("misspelt column", good, {"column": "Clsoe"}, 1, None, "did you mean 'Close'"),
        ("non-numeric", nonnumeric, {}, 10, "Close", "expected a number"),
        ("empty cell", blank, {}, 6, "Close", "--fill interpolate"),
        ("too few rows", write_csv(tmp_path / "short.csv", n=9), {}, None, "Close", "rows are needed"),
        ("constant", write_csv(tmp_path / "flat.csv", n=60, close=np.full(60, 3.0)), {}, None, "Close", "constant"),
        ("log of negative", negative, {"transform": "log-return"}, 32, "Close", "positive"),
    ]


def test_bad_files_name_file_line_and_column(tmp_path):
    for name, path, options, line, column, words in bad_cases(tmp_path):
        with pytest.raises(DataError) as caught:
            forecast.train(path, out=tmp_path / "out", **{**TINY, **options})
        error = caught.value
        assert error.path == str(path), name
        assert (error.line, error.column) == (line, column), name
        assert words in str(error), name


def test_too_few_rows_says_how_many(tmp_path):
    path = write_csv(tmp_path / "short.csv", n=9)
    with pytest.raises(DataError, match=r"at least (\d+) rows") as caught:
        forecast.train(path, out=tmp_path / "out", **TINY)
    need = int(caught.value.problem.rsplit("at least ", 1)[1].split()[0])
    forecast.train(write_csv(tmp_path / "enough.csv", n=need), out=tmp_path / "ok", **{**TINY, "epochs": 1})
    with pytest.raises(DataError):
        forecast.train(write_csv(tmp_path / "less.csv", n=need - 1), out=tmp_path / "no", **TINY)


def test_a_huge_window_is_refused_with_the_rows_it_needs(tmp_path):
    path = write_csv(tmp_path / "short.csv", n=50)
    with pytest.raises(DataError, match=r"at least (\d+) rows") as caught:
        forecast.train(path, out=tmp_path / "out", **{**TINY, "lookback": 1_000_000})
    assert int(caught.value.problem.rsplit("at least ", 1)[1].split()[0]) > 1_000_000


# -- the command line -------------------------------------------------------------------------------

def test_cli_trains_predicts_and_fails_cleanly(tmp_path, capsys):
    data = write_csv(tmp_path / "prices.csv", n=120)
    out = tmp_path / "run"
    assert cli_main(["forecast", "--data", str(data), "--out", str(out), "--epochs", "1", "--hidden", "8",
                     "--lookback", "5", "--horizon", "2", "--quiet"]) == 0
    assert "baseline naive" in capsys.readouterr().out
    assert (out / "model.safetensors").exists()
    assert cli_main(["predict", str(out), "--file", str(data)]) == 0
    assert [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()] == ["t+1", "t+2"]
    for name, path, options, *_ in bad_cases(tmp_path):
        flags = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", v)]
        code = cli_main(["forecast", "--data", str(path), "--out", str(tmp_path / "bad"), "--quiet", *flags])
        assert code == 2, name
        assert "error:" in capsys.readouterr().err
