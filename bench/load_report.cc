#include "bench/load_report.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace singleflight {
namespace bench {
namespace {

// "850ns", "123.4us", "12.34ms" or "1.234s".
std::string FormatLatency(uint64_t ns) {
  if (ns < 1000) return absl::StrCat(ns, "ns");
  if (ns < 1000000) return absl::StrFormat("%.1fus", ns / 1e3);
  if (ns < 1000000000) return absl::StrFormat("%.2fms", ns / 1e6);
  return absl::StrFormat("%.3fs", ns / 1e9);
}

std::string JsonString(absl::string_view text) {
  std::string quoted = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        quoted += "\\\"";
        break;
      case '\\':
        quoted += "\\\\";
        break;
      case '\n':
        quoted += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&quoted, "\\u%04x", c);
        } else {
          quoted += c;
        }
    }
  }
  return quoted + "\"";
}

double SharedRatio(const LoadReport& report) {
  return report.ok > 0 ? static_cast<double>(report.shared) / report.ok : 0;
}

double ExecutionsPerCall(const ServerCounters& server) {
  return server.calls > 0 ? server.executions / server.calls : 0;
}

}  // namespace

std::string FormatText(const LoadReport& report) {
  std::string loop =
      report.rate > 0
          ? absl::StrFormat("open loop %.0f/s, at most %d outstanding",
                            report.rate, report.concurrency)
          : absl::StrFormat("closed loop, %d callers", report.concurrency);
  std::string text = absl::StrFormat(
      "sfload %s %s, %s, %d channels, keys %s%s\n", report.mode, report.target,
      loop, report.channels, report.keys,
      report.fetcher.empty() ? "" : absl::StrCat(", fetcher ", report.fetcher));
  absl::StrAppendFormat(&text, "%-12s%-12s%-10s%-10s%-12s%s\n", "calls", "ok",
                        "errors", "elapsed", "calls/s", "shared");
  absl::StrAppendFormat(&text, "%-12d%-12d%-10d%-10s%-12.1f%.2f%%\n",
                        report.calls, report.ok, report.error_count(),
                        absl::StrFormat("%.2fs", report.elapsed_seconds),
                        report.throughput(), 100 * SharedRatio(report));
  absl::StrAppendFormat(&text, "%-12s%-10s%-10s%-10s%-10s%-10s%s\n", "latency",
                        "p50", "p90", "p99", "p99.9", "max", "mean");
  const LoadReport::Latency& latency = report.latency;
  absl::StrAppendFormat(&text, "%-12s%-10s%-10s%-10s%-10s%-10s%s\n",
                        "(ok calls)", FormatLatency(latency.p50),
                        FormatLatency(latency.p90), FormatLatency(latency.p99),
                        FormatLatency(latency.p999), FormatLatency(latency.max),
                        FormatLatency(latency.mean));
  if (!report.errors.empty()) {
    absl::StrAppend(&text, "errors      ",
                    absl::StrJoin(report.errors, " ", absl::PairFormatter("=")),
                    "\n");
  }
  if (report.server.has_value()) {
    absl::StrAppendFormat(
        &text, "server      calls=%.0f executions=%.0f executions/call=%.3f\n",
        report.server->calls, report.server->executions,
        ExecutionsPerCall(*report.server));
  }
  return text;
}

std::string FormatJson(const LoadReport& report) {
  std::vector<std::string> errors;
  for (const auto& [code, count] : report.errors) {
    errors.push_back(absl::StrCat(JsonString(code), ":", count));
  }
  const LoadReport::Latency& latency = report.latency;
  std::string server = "null";
  if (report.server.has_value()) {
    server = absl::StrFormat(
        R"({"calls":%.0f,"executions":%.0f,"executions_per_call":%.4f})",
        report.server->calls, report.server->executions,
        ExecutionsPerCall(*report.server));
  }
  return absl::StrCat(
      "{\"target\":", JsonString(report.target),
      ",\"mode\":", JsonString(report.mode),
      ",\"loop\":", report.rate > 0 ? "\"open\"" : "\"closed\"",
      ",\"concurrency\":", report.concurrency, ",\"rate\":", report.rate,
      ",\"channels\":", report.channels, ",\"keys\":", JsonString(report.keys),
      ",\"fetcher\":", JsonString(report.fetcher),
      ",\"elapsed_s\":", absl::StrFormat("%.3f", report.elapsed_seconds),
      ",\"calls\":", report.calls, ",\"ok\":", report.ok,
      ",\"error_count\":", report.error_count(), ",\"errors\":{",
      absl::StrJoin(errors, ","),
      "},\"throughput\":", absl::StrFormat("%.1f", report.throughput()),
      ",\"shared\":", report.shared,
      ",\"shared_ratio\":", absl::StrFormat("%.4f", SharedRatio(report)),
      ",\"latency_us\":{",
      absl::StrFormat(
          R"("p50":%.1f,"p90":%.1f,"p99":%.1f,"p99_9":%.1f,"max":%.1f,"mean":%.1f)",
          latency.p50 / 1e3, latency.p90 / 1e3, latency.p99 / 1e3,
          latency.p999 / 1e3, latency.max / 1e3, latency.mean / 1e3),
      "},\"server\":", server, "}\n");
}

}  // namespace bench
}  // namespace singleflight
