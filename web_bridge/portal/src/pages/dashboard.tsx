/** An app's usage dashboard (AnalyticsService): charts over a chosen range, and the
 * busiest conversations and most active users. Loaded on demand: Recharts stays out of
 * the first page. */
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import { useQuery } from "@tanstack/react-query";
import { useState } from "react";
import {
  Bar,
  BarChart,
  CartesianGrid,
  Legend,
  ResponsiveContainer,
  Tooltip,
  XAxis,
  YAxis,
} from "recharts";

import { api, leafOf } from "../api.js";
import {
  Granularity,
  Metric,
  Ranking,
} from "../../../sdk/src/gen/caas/analytics/v1/resources_pb.js";
import { Alert, Loading, Select } from "../ui.js";

const RANGES: [string, string][] = [
  ["1", "Last 24 hours"],
  ["7", "Last 7 days"],
  ["30", "Last 30 days"],
  ["90", "Last 90 days"],
];
const CHARTS: { title: string; metrics: [Metric, string][] }[] = [
  { title: "Messages sent", metrics: [[Metric.MESSAGES, "Messages"]] },
  { title: "Active and new users", metrics: [[Metric.ACTIVE_USERS, "Active users"], [Metric.NEW_USERS, "New users"]] },
  { title: "Conversations", metrics: [[Metric.CONVERSATIONS_CREATED, "Created"], [Metric.ACTIVE_CONVERSATIONS, "Active"]] },
  { title: "API calls", metrics: [[Metric.API_CALLS, "Calls"]] },
  { title: "Peak concurrent streams", metrics: [[Metric.PEAK_STREAMS, "Streams"]] },
  { title: "Webhook deliveries", metrics: [[Metric.WEBHOOK_DELIVERIES, "Deliveries"], [Metric.WEBHOOK_DEAD_LETTERS, "Dead letters"]] },
];
const COLORS = ["#2563eb", "#d97706", "#059669"];

function interval(days: number) {
  const end = new Date();
  end.setUTCMinutes(0, 0, 0);
  end.setUTCHours(end.getUTCHours() + 1);
  const start = new Date(end.getTime() - days * 86_400_000);
  return { startTime: timestampFromDate(start), endTime: timestampFromDate(end) };
}

export default function Dashboard(props: { app: string }) {
  const [days, setDays] = useState("7");
  const granularity = days === "1" ? Granularity.HOUR : Granularity.DAY;
  const range = interval(Number(days));
  const series = useQuery({
    queryKey: ["series", props.app, days],
    queryFn: () => api.analytics.queryTimeSeries({
      parent: props.app,
      metrics: CHARTS.flatMap((c) => c.metrics.map(([m]) => m)),
      interval: range,
      granularity,
    }),
    refetchInterval: 30_000,
  });
  const busiest = useQuery({
    queryKey: ["top", props.app, days, "conversations"],
    queryFn: () => api.analytics.queryTopList({ parent: props.app, ranking: Ranking.BUSIEST_CONVERSATIONS, interval: range, limit: 5 }),
  });
  const active = useQuery({
    queryKey: ["top", props.app, days, "users"],
    queryFn: () => api.analytics.queryTopList({ parent: props.app, ranking: Ranking.MOST_ACTIVE_USERS, interval: range, limit: 5 }),
  });
  const label = (date: Date) => granularity === Granularity.HOUR
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString([], { month: "short", day: "numeric" });
  const rows = (metrics: [Metric, string][]) => {
    const all = series.data?.timeSeries ?? [];
    const first = all.find((s) => s.metric === metrics[0][0]);
    return (first?.points ?? []).map((point, index) => {
      const row: Record<string, string | number> = { time: label(timestampDate(point.startTime!)) };
      for (const [metric, name] of metrics) {
        const found = all.find((s) => s.metric === metric);
        row[name] = Number(found?.points[index]?.value ?? 0n);
      }
      return row;
    });
  };
  const total = (metric: Metric) => (series.data?.timeSeries ?? [])
    .filter((s) => s.metric === metric)
    .reduce((sum, s) => sum + s.points.reduce((n, p) => n + Number(p.value), 0), 0);
  // Distinct users are not summed over buckets: the busiest bucket's count.
  const peak = (metric: Metric) => Math.max(0, ...(series.data?.timeSeries ?? [])
    .filter((s) => s.metric === metric)
    .flatMap((s) => s.points.map((p) => Number(p.value))));
  return (
    <div className="dashboard">
      <div className="toolbar">
        <Select label="Range" value={days} onChange={setDays} options={RANGES} />
      </div>
      {series.isPending && <Loading what="usage" />}
      <Alert error={series.error} />
      {series.data && (
        <>
          <ul className="stats" aria-label="Totals over the range">
            <li><strong data-testid="total-messages">{total(Metric.MESSAGES)}</strong> messages</li>
            <li>
              <strong data-testid="peak-active-users">{peak(Metric.ACTIVE_USERS)}</strong>
              {granularity === Granularity.HOUR ? "active users in the busiest hour" : "active users on the busiest day"}
            </li>
            <li><strong>{total(Metric.NEW_USERS)}</strong> new users</li>
            <li><strong>{total(Metric.CONVERSATIONS_CREATED)}</strong> conversations created</li>
            <li><strong>{total(Metric.API_CALLS)}</strong> API calls</li>
          </ul>
          <div className="charts">
            {CHARTS.map((chart) => (
              <figure key={chart.title} className="chart">
                <figcaption>{chart.title}</figcaption>
                <ResponsiveContainer width="100%" height={220}>
                  <BarChart data={rows(chart.metrics)}>
                    <CartesianGrid strokeDasharray="3 3" />
                    <XAxis dataKey="time" minTickGap={24} />
                    <YAxis allowDecimals={false} width={48} />
                    <Tooltip />
                    {chart.metrics.length > 1 && <Legend />}
                    {chart.metrics.map(([, name], i) => (
                      <Bar key={name} dataKey={name} fill={COLORS[i]} isAnimationActive={false} />
                    ))}
                  </BarChart>
                </ResponsiveContainer>
              </figure>
            ))}
          </div>
        </>
      )}
      <div className="tops">
        <section aria-labelledby="busiest">
          <h2 id="busiest">Busiest conversations</h2>
          <Alert error={busiest.error} />
          <ol>{busiest.data?.entries.map((e) => <li key={e.name}>{leafOf(e.name)} — {String(e.messages)} messages</li>)}</ol>
          {busiest.data && !busiest.data.entries.length && <p className="empty">No messages in this range.</p>}
        </section>
        <section aria-labelledby="most-active">
          <h2 id="most-active">Most active users</h2>
          <Alert error={active.error} />
          <ol>{active.data?.entries.map((e) => <li key={e.name}>{leafOf(e.name)} — {String(e.messages)} messages</li>)}</ol>
          {active.data && !active.data.entries.length && <p className="empty">No messages in this range.</p>}
        </section>
      </div>
    </div>
  );
}
