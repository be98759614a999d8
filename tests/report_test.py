"""rlhf report: the page for a language-model run (sft), a control run (ctrl
train), runs overlaid, a long run thinned, torn lines counted, escaping and the
refusals; then the page in headless Chromium (/usr/bin/chromium: SKIP where it
is missing): a screenshot that is not blank, no console message from the page,
and a DOM that holds every curve after parsing.
"""
import html.parser
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, RLHF, ROOT, exit_code, report, run  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
TMP = os.path.join(ROOT, BUILD, "tmp", "report_test")
L, R = 58.0, 520.0 - 150.0  # the plot area's left and right pixels (width 520)


# ------------------------------------------------------------- the page --
class Page(html.parser.HTMLParser):
    """The plots of a page: plots[title] = {label: [point count of each of its
    polylines]}, points[title] = {label: [[(x, y), ...] per polyline]}; and the
    text outside tags."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.plots, self.points, self.texts = {}, {}, []
        self.cur, self.title, self.in_title = None, None, False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg" and a.get("class") == "plot":
            self.cur, self.title = {}, None
        elif tag == "text" and a.get("class") == "title" and self.cur is not None:
            self.in_title = True
        elif tag == "polyline" and a.get("class") == "series" and self.cur is not None:
            pts = [tuple(map(float, p.split(","))) for p in a["points"].split()]
            self.cur.setdefault(a["data-label"], []).append(pts)

    def handle_endtag(self, tag):
        if tag == "text":
            self.in_title = False
        elif tag == "svg" and self.cur is not None:
            self.points[self.title] = self.cur
            self.plots[self.title] = {k: [len(p) for p in v] for k, v in self.cur.items()}
            self.cur = None

    def handle_data(self, data):
        self.texts.append(data)
        if self.in_title:
            self.title = data


def load_page(path):
    text = open(path, encoding="utf-8").read()
    return text, Page(text)


def expected(run_dir):
    """metric -> number of finite values, from metrics.jsonl as written (lines
    that are not JSON objects or have no numeric step are skipped)."""
    counts = {}

    def walk(o, prefix):
        for k, v in o.items():
            name = f"{prefix}/{k}" if prefix else k
            if not prefix and k == "step":
                continue
            if isinstance(v, dict):
                walk(v, name)
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                counts[name] = counts.get(name, 0) + (1 if math.isfinite(v) else 0)
            elif v is None:
                counts.setdefault(name, 0)

    for line in open(os.path.join(run_dir, "metrics.jsonl"), encoding="utf-8", errors="replace"):
        try:
            o = json.loads(line)
        except ValueError:
            continue
        if isinstance(o, dict) and isinstance(o.get("step"), (int, float)):
            walk(o, "")
    return counts


def label(d):
    return os.path.basename(os.path.normpath(d))


def check_curves(page, runs, what):
    """every metric of every run has a plot, with the run's curve of the right length"""
    want = {}
    for d in runs:
        for m, n in expected(d).items():
            want.setdefault(m, {})[label(d)] = n
    bad = []
    for m, per_run in want.items():
        plot = page.plots.get(m)
        if plot is None:
            bad.append(f"no plot for {m}")
            continue
        for lab, n in per_run.items():
            got = sum(plot.get(lab, []))
            if got != n:
                bad.append(f"{m}/{lab}: {got} points, want {n}")
        extra = set(plot) - set(per_run)
        if extra:
            bad.append(f"{m}: curves of {sorted(extra)}")
    if set(page.plots) - set(want):
        bad.append(f"plots of no metric: {sorted(set(page.plots) - set(want))}")
    report(not bad and want, f"{what}: a plot per metric ({len(want)}), each run's curve with "
           "its points", "; ".join(bad[:6]) or "no metrics")


# ------------------------------------------------------------ the runs --
def make_runs():
    data, runs = os.path.join(TMP, "data"), {}
    run("data", "--task", "arith", "--out", data, "--n_train", "300", threads=1)
    for name, steps, log in (("sft", 20, 2), ("sft-b", 30, 5)):
        runs[name] = os.path.join(TMP, name)
        run("sft", "--model", "tiny", "--data", os.path.join(data, "sft.jsonl"), "--output_dir",
            runs[name], "--max_steps", str(steps), "--logging_steps", str(log), "--quiet", threads=1)
    runs["ctrl"] = os.path.join(TMP, "ctrl")
    p = run("ctrl", "train", "--algo", "sac", "--env", "pendulum", "--online_steps", "1000",
            "--start_steps", "200", "--hidden", "32", "--eval_every", "500", "--log_every", "100",
            "--eval_episodes", "1", "--quiet", "--output_dir", runs["ctrl"], check=False, threads=1)
    if p.returncode != 0:
        print(f"SKIP control run: rlhf ctrl train failed here: {p.stderr.strip()[-200:]}")
        del runs["ctrl"]
    # a sample whose text would be markup if it were not escaped
    with open(os.path.join(runs["sft"], "samples.jsonl"), "w") as f:
        f.write(json.dumps({"step": 1, "prompt": "1+1=",
                            "completion": "<script>alert(1)</script> & \u0001"}) + "\n")
        f.write(json.dumps({"step": 2, "prompt": "2+2=", "completion": "4"}) + "\n")
    return data, runs


def make_long_run():
    """5000 lines (thinned to 2000), a nested metric, eval lines every 1000
    steps, a null, two malformed lines, one without a step and a torn last line"""
    d = os.path.join(TMP, "long")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for s in range(1, 5001):
            o = {"step": s, "loss": math.exp(-s / 1000), "opt": {"lr": 1e-3 * (1 - s / 5000)}}
            if s == 2500:
                o["loss"] = None
            f.write(json.dumps(o) + "\n")
            if s % 1000 == 0:
                f.write(json.dumps({"step": s, "eval/score": s / 100}) + "\n")
            if s == 10:
                f.write('{"step": 11, "loss": 0.5\n')   # cut short
                f.write("not json at all\n")
                f.write(json.dumps({"loss": 1.0}) + "\n")  # no step
        f.write('{"step": 5001, "loss"')  # torn: the writer was killed mid-line
    json.dump({"command": "synthetic", "lr": 1e-3}, open(os.path.join(d, "config.json"), "w"))
    return d


def report_cmd(*args, cwd=ROOT):
    return subprocess.run([RLHF, "report", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


# --------------------------------------------------------------- checks --
def page_checks(data, runs):
    sft, sftb, ctrl = runs["sft"], runs["sft-b"], runs.get("ctrl")
    p = report_cmd(sft)
    out = os.path.join(sft, "report.html")
    report(p.returncode == 0 and os.path.exists(out), "one run: the page goes to RUN_DIR/report.html",
           p.stderr[-300:])
    if p.returncode != 0:
        return None
    text, page = load_page(out)
    check_curves(page, [sft], "sft run")
    report("&lt;script&gt;alert(1)&lt;/script&gt; &amp; \u2401" in text and "<script" not in text,
           "a sample's markup and control characters are escaped")
    cfg = json.load(open(os.path.join(sft, "config.json")))
    report(f"<td>learning_rate</td><td>{cfg['learning_rate']:.10g}</td>" in text and
           "<td>train_loss</td>" in text, "config.json and summary.json as tables")

    if ctrl:
        p = report_cmd(ctrl, "--out", os.path.join(TMP, "ctrl.html"))
        text, page = load_page(os.path.join(TMP, "ctrl.html"))
        check_curves(page, [ctrl], "control run")
        report("eval/return_mean" in page.plots and "<td>ctrl train</td>" in text and
               "<td>algo sac, env pendulum</td>" in text,
               "control run: eval/return_mean plotted, the command and algorithm named")

    both = os.path.join(TMP, "both.html")
    p = report_cmd(sft, sftb, "--out", both)
    _, page = load_page(both)
    check_curves(page, [sft, sftb], "two sft runs overlaid")
    report(all(set(pl) == {"sft", "sft-b"} for pl in page.plots.values()),
           "overlaid: every plot has both runs' curves (legend = folder name)")
    if ctrl:
        p = report_cmd(sft, ctrl, "--out", os.path.join(TMP, "mixed.html"))
        _, page = load_page(os.path.join(TMP, "mixed.html"))
        check_curves(page, [sft, ctrl], "sft and control runs together")

    p = report_cmd(sft, sftb, cwd=TMP)
    report(p.returncode == 0 and os.path.exists(os.path.join(TMP, "report.html")),
           "several runs: report.html in the current folder by default", p.stderr[-300:])
    return both


def long_run_checks():
    d = make_long_run()
    out = os.path.join(TMP, "long.html")
    t0 = time.time()
    p = report_cmd(d, "--out", out)
    secs = time.time() - t0
    if p.returncode != 0:
        report(False, "long run: the page", p.stderr[-300:])
        return
    text, page = load_page(out)
    loss = page.points.get("loss", {}).get("long", [])
    n = sum(len(x) for x in loss)
    # 4999 finite values thinned to 2000 points; the null (if kept) splits the line
    first, last = loss[0][0] if loss else None, loss[-1][-1] if loss else None
    report(n in (1999, 2000) and first and abs(first[0] - L) < 0.01 and abs(last[0] - R) < 0.01,
           f"long run: 5000 points drawn as ~2000, the first and last kept ({secs:.2f} s)",
           f"{n} points, first {first}, last {last}")
    report("thinned" in text or "evenly spaced" in text, "long run: the page says it thinned")
    report("opt/lr" in page.plots and sum(page.plots["eval/score"]["long"]) == 5,
           "nested keys as a/b; sparse eval lines plotted at their steps")
    report("3 malformed or torn, 1 without a step" in text and "skipped" in p.stdout,
           "torn and malformed lines skipped and counted on the page",
           [t for t in page.texts if "skipped" in t][:2])


def refusal_checks(data, runs):
    missing = os.path.join(TMP, "no-such-run")
    p = report_cmd(missing)
    report(p.returncode == 1 and missing in p.stderr, "a missing folder: exit 1, named", p.stderr)
    p = report_cmd(runs["sft"], data, "--out", os.path.join(TMP, "never.html"))
    report(p.returncode == 1 and data in p.stderr and "metrics.jsonl" in p.stderr and
           not os.path.exists(os.path.join(TMP, "never.html")),
           "a folder without metrics.jsonl: exit 1, named, no page", p.stderr)
    metrics = os.path.join(runs["sft"], "metrics.jsonl")
    before = open(metrics, "rb").read()
    p = report_cmd(runs["sft"], "--out", metrics)
    report(p.returncode == 1 and "is the run's" in p.stderr and open(metrics, "rb").read() == before,
           "--out naming the run's metrics.jsonl: refused, the file kept", p.stderr)
    p = report_cmd()
    report(p.returncode == 2 and "run folder" in p.stderr, "no folder given: usage, exit 2", p.stderr)
    p = report_cmd("--help")
    report(p.returncode == 0 and "RUN_DIR/report.html" in p.stdout and
           "current folder" in p.stdout, "--help says where the page goes")


# ------------------------------------------------------------- Chromium --
def png_pixels(path):
    """(width, height, channels, rows of bytes) of an 8-bit RGB/RGBA PNG"""
    raw = open(path, "rb").read()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    while pos < len(raw):
        n, kind = struct.unpack(">I4s", raw[pos:pos + 8])
        body = raw[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6), f"PNG depth {depth} colour type {ctype}"
    ch = 3 if ctype == 2 else 4
    data, stride, rows, prev = zlib.decompress(idat), w * ch, [], bytearray(w * ch)
    for y in range(h):
        f, line = data[y * (stride + 1)], bytearray(data[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(ch, stride):
                line[i] = (line[i] + line[i - ch]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - ch] if i >= ch else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a, b = line[i - ch] if i >= ch else 0, prev[i]
                c = prev[i - ch] if i >= ch else 0
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(line)
        prev = line
    return w, h, ch, rows


def chromium(*args, timeout=180):
    prof = os.path.join(TMP, "chromium-profile")
    cmd = [CHROMIUM, "--headless", "--disable-gpu", f"--user-data-dir={prof}", "--no-first-run",
           "--enable-logging=stderr", "--v=0", *args]
    if os.geteuid() == 0:
        cmd.insert(2, "--no-sandbox")
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "HOME": TMP})
    return p, time.time() - t0


def console_lines(stderr, page):
    """the console messages a page printed (a page with no script prints none;
    an SVG attribute Chromium cannot parse prints an Error)"""
    return [ln for ln in stderr.splitlines() if "CONSOLE" in ln and os.path.basename(page) in ln]


def chromium_checks(page_path):
    if not os.path.exists(CHROMIUM):
        for name in ("screenshot", "console", "dom", "console canary"):
            print(f"SKIP chromium {name}: no {CHROMIUM} (apt-get install chromium)")
        return
    url = "file://" + page_path
    shot = os.path.join(TMP, "page.png")
    p, secs = chromium("--hide-scrollbars", "--window-size=1100,900", f"--screenshot={shot}", url)
    if p.returncode != 0 or not os.path.exists(shot):
        report(False, "chromium screenshot", f"rc {p.returncode}: {p.stderr[-500:]}")
        return
    t0 = time.time()
    w, h, ch, rows = png_pixels(shot)
    colours, ink, blue = set(), 0, 0
    for line in rows:
        for i in range(0, len(line), ch):
            px = bytes(line[i:i + 3])
            colours.add(px)
            ink += px != b"\xff\xff\xff"
            # the first run's curve: Okabe-Ito blue #0072B2
            blue += abs(px[0] - 0x00) < 40 and abs(px[1] - 0x72) < 40 and abs(px[2] - 0xB2) < 40
    print(f"  chromium screenshot {secs:.1f} s, PNG decode {time.time() - t0:.1f} s: {w}x{h}, "
          f"{len(colours)} colours, {ink} non-white pixels, {blue} curve-blue")
    report(len(colours) > 20 and ink > 0.01 * w * h and blue > 100,
           "chromium: the screenshot shows the page (colours, ink, the first run's curve)",
           f"{len(colours)} colours, {ink} non-white, {blue} blue")
    msgs = console_lines(p.stderr, page_path)
    report(not msgs, "chromium: no console message from the page", "\n".join(msgs[:5]))

    p, secs = chromium("--dump-dom", url)
    dom = p.stdout
    src = open(page_path, encoding="utf-8").read()
    want, got = src.count('<polyline class="series"'), dom.count('<polyline class="series"')
    svgs = (src.count('<svg xmlns="http://www.w3.org/2000/svg" class="plot"'), dom.count('class="plot"'))
    print(f"  chromium --dump-dom {secs:.1f} s: {got} polylines ({want} in the file), svgs {svgs}")
    report(p.returncode == 0 and want > 0 and got == want and svgs[0] == svgs[1],
           "chromium: the parsed DOM holds every svg and polyline", f"{got} of {want}, svgs {svgs}")
    report(not console_lines(p.stderr, page_path), "chromium: no console message (dump-dom)")

    # the console check can fail: a page with an SVG attribute Chromium rejects
    bad = os.path.join(TMP, "canary.html")
    with open(bad, "w") as f:
        f.write('<!doctype html><html><body><svg width="10" height="10">'
                '<polyline points="nan,nan 1,2"/></svg></body></html>\n')
    p, secs = chromium("--dump-dom", "file://" + bad)
    report(len(console_lines(p.stderr, bad)) >= 1,
           f"chromium console canary: a broken SVG attribute is caught ({secs:.1f} s)",
           p.stderr[-500:])


def main():
    if not os.path.exists(RLHF):
        report(False, "rlhf report", f"no {RLHF} (build first)")
        return exit_code()
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    data, runs = make_runs()
    both = page_checks(data, runs)
    long_run_checks()
    refusal_checks(data, runs)
    if both:
        t0 = time.time()
        chromium_checks(both)
        print(f"  chromium checks: {time.time() - t0:.1f} s")
    return exit_code()


if __name__ == "__main__":
    sys.exit(main())
