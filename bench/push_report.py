"""The push benchmark's tables: one per latency, the median run of each contestant, the targets."""

from __future__ import annotations

from collections import Counter

from push_measure import BATCH, Result


def median_runs(results: list[Result]) -> tuple[list[Result], dict[tuple[str, str, str], str]]:
    """The run of median rate of each (crm, scenario, contestant), and the range of rates
    (`results` are of one latency)."""
    groups: dict[tuple[str, str, str], list[Result]] = {}
    for r in results:
        groups.setdefault((r.crm, r.scenario, r.contestant), []).append(r)
    chosen, spread = [], {}
    for key, runs in groups.items():
        runs.sort(key=lambda r: r.rate)
        chosen.append(runs[len(runs) // 2])
        if len(runs) > 1:
            spread[key] = f"{runs[0].rate:,.0f}..{runs[-1].rate:,.0f}"
    return chosen, spread


def report(all_results: list[Result]) -> None:
    """One table per latency, in the order run."""
    for latency in dict.fromkeys(r.latency_ms for r in all_results):
        runs = [r for r in all_results if r.latency_ms == latency]
        repeats = max(Counter((r.crm, r.scenario, r.contestant) for r in runs).values())
        median = f", median of {repeats} runs" if repeats > 1 else ""
        print(
            f"\nlatency {latency:g} ms per request at the CRM simulator (both contestants){median}"
        )
        table(runs)
    print(
        f"\nbatch: HubSpot {BATCH['hubspot']}, Salesforce {BATCH['salesforce']} accounts; "
        "targets per batch: at most 2 writes and 1 read, and at least 10x the baseline's "
        "accounts/s.\ncpu ms/acc: CPU milliseconds per account used by this process (syncd, "
        "both threads; or the baseline script) + by the CRM simulator; Postgres not counted."
    )


def table(all_results: list[Result]) -> None:
    results, spread = median_runs(all_results)
    head = (
        f"{'crm':<10} {'scenario':<8} {'contestant':<10} {'accounts':>8} {'seconds':>8} "
        f"{'acc/s':>8} {'speed-up':>8} {'writes':>7} {'reads':>6} {'w/batch':>8} "
        f"{'r/batch':>8} {'failed':>6} {'cpu ms/acc':>10}  targets"
    )
    print(head + "\n" + "-" * len(head))
    for crm in dict.fromkeys(r.crm for r in results):
        for scenario in ("create", "update"):
            pair = {r.contestant: r for r in results if (r.crm, r.scenario) == (crm, scenario)}
            base = pair.get("baseline")
            for who in ("syncd", "baseline"):
                r = pair.get(who)
                if r is None:
                    continue
                speed = r.rate / base.rate if base and base.rate else 0.0
                verdict = ""
                if who == "syncd":
                    checks = [
                        ("writes", r.per_batch("write") <= 2.0),
                        ("reads", r.per_batch("read") <= 1.0),
                        ("10x", speed >= 10.0),
                    ]
                    verdict = " ".join(f"{n}:{'ok' if good else 'MISSED'}" for n, good in checks)
                rates = spread.get((crm, scenario, who))
                verdict += f" (acc/s over runs: {rates})" if rates else ""
                print(
                    f"{crm:<10} {scenario:<8} {who:<10} {r.accounts:>8,} {r.seconds:>8.2f} "
                    f"{r.rate:>8,.0f} {speed:>7.1f}x {r.requests.get('write', 0):>7,} "
                    f"{r.requests.get('read', 0):>6,} {r.per_batch('write'):>8.2f} "
                    f"{r.per_batch('read'):>8.2f} {r.failed:>6} {r.cpu_ms():>10}  {verdict}"
                )
