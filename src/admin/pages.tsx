/**
 * The console's pages. JSX escapes every value it renders: dead-letter bodies
 * and reasons come from senders and upstreams, so they are only ever text.
 */
import type { Child } from "hono/jsx";
import type { CounterRow, DeadLetter, DeadLetterFilter, DeadLetterSummary } from "../delivery/ledger.ts";
import type { Health } from "../shared/health.ts";
import { FlowPanel } from "./flow.tsx";

export const BASE = "/admin";
export const CONSOLE = `${BASE}/console`;

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:0;color:#1a202c;background:#f7fafc}
header{display:flex;justify-content:space-between;align-items:center;padding:10px 24px;background:#1a365d;color:#fff}
header h1{font-size:18px;margin:0}header a{color:#fff}
main{max-width:1100px;margin:0 auto;padding:8px 24px 40px}
section.panel{background:#fff;border:1px solid #e2e8f0;border-radius:6px;padding:8px 16px 16px;margin:16px 0}
table{border-collapse:collapse;width:100%;margin:8px 0}th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #edf2f7;vertical-align:top}
caption{text-align:left;font-weight:600;padding:4px 0}.num{text-align:right;font-variant-numeric:tabular-nums}
tr.total{font-weight:600;background:#f7fafc}
.chart{width:100%;max-width:720px;height:auto;display:block}
.legend span{margin-right:14px}
.ok{color:#2f855a;font-weight:600}.bad{color:#c53030;font-weight:600}
.notice{background:#f0fff4;border:1px solid #9ae6b4;padding:8px 12px;border-radius:4px}
.warning{background:#fffaf0;border:1px solid #fbd38d;padding:8px 12px;border-radius:4px}
.error{background:#fff5f5;border:1px solid #feb2b2;padding:8px 12px;border-radius:4px}
pre{background:#f7fafc;border:1px solid #e2e8f0;padding:12px;overflow:auto;white-space:pre-wrap;word-break:break-word}
form.inline{display:inline}form.filters label{margin-right:12px}
button,.button{font:inherit;padding:4px 12px;border-radius:4px;border:1px solid #2b6cb0;background:#2b6cb0;color:#fff;cursor:pointer;text-decoration:none}
button.danger,.button.danger{background:#c53030;border-color:#c53030}
.button.secondary{background:#fff;color:#2b6cb0}
.direction{margin:8px 0 20px}
code{background:#edf2f7;padding:0 4px;border-radius:3px}
`;

export function Layout(props: { title: string; nonce: string | undefined; signedIn: boolean; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>{`${props.title} · vero-segment-bridge`}</title>
        <style nonce={props.nonce}>{STYLE}</style>
      </head>
      <body>
        <header>
          <h1>
            <a href={BASE}>vero-segment-bridge</a> · {props.title}
          </h1>
          {props.signedIn && (
            <form method="post" action={`${CONSOLE}/sign-out`} class="inline">
              <a href={`${CONSOLE}/tester`}>Event tester</a>{" "}
              <button type="submit" class="secondary">
                Sign out
              </button>
            </form>
          )}
        </header>
        <main>{props.children}</main>
      </body>
    </html>
  );
}

export function SignInForm(props: { problem?: string }) {
  return (
    <section class="panel">
      <h2>Sign in</h2>
      {props.problem && (
        <p class="error" role="alert">
          {props.problem}
        </p>
      )}
      <form method="post" action={`${CONSOLE}/sign-in`}>
        <p>
          <label>
            Admin token (<code>ADMIN_TOKEN</code>){" "}
            <input type="password" name="token" autocomplete="current-password" required autofocus size={40} />
          </label>{" "}
          <button type="submit">Sign in</button>
        </p>
      </form>
      <p>The session lasts 8 hours in this browser; rotating ADMIN_TOKEN signs out the sessions of the old value.</p>
    </section>
  );
}

const DIRECTION_NAMES: Record<string, string> = {
  inbound: "Inbound (Vero → Segment)",
  outbound: "Outbound (Segment → Vero)",
  firstEventSignatures: "Arrays on /segment signed over their first event only",
};

function StatusValue(props: { value: unknown }) {
  const { value } = props;
  if (value === true) return <span class="ok">ready</span>;
  if (value === false) return <span class="bad">not configured</span>;
  if (value !== null && typeof value === "object") {
    return (
      <span>
        {Object.entries(value).map(([key, inner], i) => (
          <>
            {i > 0 && ", "}
            {key}: <StatusValue value={inner} />
          </>
        ))}
      </span>
    );
  }
  return <span>{String(value)}</span>;
}

/** Every part /health reports, so whatever it learns to report shows here too. */
export function StatusPanel(props: { health: Health; problems: Record<string, string>; ledgerBound: boolean }) {
  const { status: _status, version, ...parts } = props.health;
  return (
    <section class="panel" id="status">
      <h2>Status</h2>
      <table>
        <tbody>
          {Object.entries(parts).map(([name, value]) => (
            <tr data-part={name}>
              <th scope="row">{DIRECTION_NAMES[name] ?? name}</th>
              <td>
                <StatusValue value={value} />
                {props.problems[name] && <div>{props.problems[name]}</div>}
              </td>
            </tr>
          ))}
          <tr data-part="ledger">
            <th scope="row">Ledger (D1 binding LEDGER)</th>
            <td>{props.ledgerBound ? <span class="ok">bound</span> : <span class="bad">not bound</span>}</td>
          </tr>
          <tr>
            <th scope="row">Version</th>
            <td>{version}</td>
          </tr>
        </tbody>
      </table>
    </section>
  );
}

export function LedgerMissing() {
  return (
    <p class="warning" id="ledger-missing">
      The ledger is not bound, so there are no counts and no dead letters to show. Bind a D1 database as{" "}
      <code>LEDGER</code> in <code>wrangler.toml</code> (<code>[[d1_databases]]</code>), create it with{" "}
      <code>npx wrangler d1 create vero-segment-bridge-ledger</code>, apply the schema with{" "}
      <code>npx wrangler d1 migrations apply LEDGER --remote</code>, and deploy again.
    </p>
  );
}

export function FlowSection(props: { rows: CounterRow[] | undefined; until: Date }) {
  return (
    <section class="panel" id="flow">
      <h2>Flow</h2>
      {props.rows === undefined ? (
        <LedgerMissing />
      ) : props.rows.length === 0 ? (
        <div class="notice" id="flow-empty">
          <p>Nothing has flowed in the last 7 days. To see traffic here:</p>
          <ul>
            <li>
              point Vero's webhook at <code>/vero/webhook?token=…</code> (the <code>VERO_WEBHOOK_TOKEN</code>), for Vero
              → Segment;
            </li>
            <li>
              add a Webhooks destination in Segment pointing at <code>/segment</code> with the{" "}
              <code>SEGMENT_SHARED_SECRET</code>, for Segment → Vero;
            </li>
            <li>then send a test event from either side: counts appear here within the hour they flowed.</li>
          </ul>
        </div>
      ) : (
        <FlowPanel rows={props.rows} until={props.until} />
      )}
    </section>
  );
}

/** Query string of a filter, for links and forms that keep it. */
export function filterQuery(filter: Omit<DeadLetterFilter, "limit">): string {
  const params = new URLSearchParams();
  for (const key of ["source", "reason", "since", "cursor"] as const) {
    const value = filter[key];
    if (value) params.set(key, value);
  }
  const query = params.toString();
  return query ? `?${query}` : "";
}

function FilterFields(props: { filter: DeadLetterFilter }) {
  const { filter } = props;
  return (
    <>
      {filter.source && <input type="hidden" name="source" value={filter.source} />}
      {filter.reason && <input type="hidden" name="reason" value={filter.reason} />}
      {filter.since && <input type="hidden" name="since" value={filter.since} />}
    </>
  );
}

export function DescribeFilter(props: { filter: DeadLetterFilter }) {
  const { source, reason, since } = props.filter;
  if (!source && !reason && !since) return <>all dead letters</>;
  return (
    <>
      dead letters{source && <> from the {source} queue</>}
      {reason && (
        <>
          {" "}
          whose reason contains “<code>{reason}</code>”
        </>
      )}
      {since && <> that failed at or after {since}</>}
    </>
  );
}

export function DeadLettersSection(props: {
  page: { letters: DeadLetterSummary[]; total: number; cursor?: string } | undefined;
  filter: DeadLetterFilter;
}) {
  const { page, filter } = props;
  const filtered = Boolean(filter.source || filter.reason || filter.since);
  return (
    <section class="panel" id="dead-letters">
      <h2>Dead letters</h2>
      {page === undefined ? (
        <LedgerMissing />
      ) : (
        <>
          <form method="get" action={BASE} class="filters">
            <label>
              Source{" "}
              <select name="source">
                <option value="" selected={!filter.source}>
                  any
                </option>
                <option value="segment" selected={filter.source === "segment"}>
                  segment (Vero → Segment)
                </option>
                <option value="vero" selected={filter.source === "vero"}>
                  vero (Segment → Vero)
                </option>
              </select>
            </label>
            <label>
              Reason contains <input type="search" name="reason" value={filter.reason ?? ""} size={24} />
            </label>
            <label>
              Failed since (UTC){" "}
              <input type="text" name="since" value={filter.since ?? ""} placeholder="2026-11-28T00:00Z" />
            </label>
            <button type="submit">Filter</button> {filtered && <a href={`${BASE}#dead-letters`}>clear</a>}
          </form>
          <p id="dead-letter-count">
            Showing {page.letters.length} of {page.total}: <DescribeFilter filter={filter} />.
            {page.total > 0 && (
              <>
                {" "}
                <a class="button" href={`${CONSOLE}/redrive${filterQuery({ ...filter, cursor: undefined })}`}>
                  Re-drive all {page.total} matching…
                </a>
              </>
            )}
          </p>
          {page.total === 0 ? (
            <p class="notice" id="dead-letters-empty">
              {filtered
                ? "No dead letter matches this filter."
                : "No dead letters: everything that failed for good was re-driven or deleted, or nothing has failed yet."}
            </p>
          ) : (
            <table id="dead-letter-table">
              <thead>
                <tr>
                  <th scope="col">Failed at (UTC)</th>
                  <th scope="col">Source</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Kind</th>
                  <th scope="col" class="num">
                    Attempts
                  </th>
                  <th scope="col" />
                </tr>
              </thead>
              <tbody>
                {page.letters.map((letter) => (
                  <tr data-id={letter.id}>
                    <td>{letter.failedAt}</td>
                    <td>{letter.source}</td>
                    <td class="reason">{letter.reason}</td>
                    <td>{letter.permanent ? "permanent" : "retries exhausted"}</td>
                    <td class="num">{letter.attempts}</td>
                    <td>
                      <a href={`${CONSOLE}/dead-letters/${encodeURIComponent(letter.id)}`}>details</a>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {page.cursor && (
            <p>
              <a href={`${BASE}${filterQuery({ ...filter, cursor: page.cursor })}#dead-letters`}>Next page</a>
            </p>
          )}
        </>
      )}
    </section>
  );
}

export function LetterDetail(props: { letter: DeadLetter }) {
  const { letter } = props;
  const path = `${CONSOLE}/dead-letters/${encodeURIComponent(letter.id)}`;
  return (
    <section class="panel" id="letter">
      <h2>Dead letter</h2>
      <table>
        <tbody>
          <tr>
            <th scope="row">Id</th>
            <td>
              <code>{letter.id}</code>
            </td>
          </tr>
          <tr>
            <th scope="row">Source</th>
            <td>{letter.source} queue</td>
          </tr>
          <tr>
            <th scope="row">Reason</th>
            <td class="reason">{letter.reason}</td>
          </tr>
          <tr>
            <th scope="row">Kind</th>
            <td>
              {letter.permanent
                ? "permanent: the upstream refused the data; fix the cause before re-driving"
                : "retries exhausted: the upstream stayed unavailable"}
            </td>
          </tr>
          <tr>
            <th scope="row">Attempts</th>
            <td>{letter.attempts}</td>
          </tr>
          <tr>
            <th scope="row">Failed at (UTC)</th>
            <td>{letter.failedAt}</td>
          </tr>
        </tbody>
      </table>
      <h3>Body</h3>
      <pre id="letter-body">{JSON.stringify(letter.body, null, 2)}</pre>
      <p>
        <a class="button" href={`${path}/redrive`}>
          Re-drive…
        </a>{" "}
        <a class="button danger" href={`${path}/delete`}>
          Delete…
        </a>{" "}
        <a href={`${CONSOLE}/tester?letter=${encodeURIComponent(letter.id)}`}>open in the event tester</a>{" "}
        <a href={`${BASE}#dead-letters`}>back</a>
      </p>
    </section>
  );
}

/** The confirmation step of every action: a POST form with the one button that does it. */
export function ConfirmAction(props: {
  question: Child;
  action: string;
  button: string;
  danger?: boolean;
  filter?: DeadLetterFilter;
  back: string;
}) {
  return (
    <section class="panel" id="confirm">
      <h2>Please confirm</h2>
      <p>{props.question}</p>
      <form method="post" action={props.action}>
        {props.filter && <FilterFields filter={props.filter} />}
        <button type="submit" class={props.danger ? "danger" : ""}>
          {props.button}
        </button>{" "}
        <a href={props.back}>Cancel</a>
      </form>
    </section>
  );
}

export type Done =
  | { done: "redriven"; count: number; remaining?: number }
  | { done: "deleted"; count: number }
  | { done: "signed-out" };

export function Notice(props: { done: Done | undefined }) {
  const { done } = props;
  if (!done) return null;
  let text: string;
  if (done.done === "signed-out") text = "Signed out.";
  else if (done.done === "deleted") text = `Deleted ${done.count} dead letter${done.count === 1 ? "" : "s"}.`;
  else {
    text = `Re-drove ${done.count} dead letter${done.count === 1 ? "" : "s"}: back on their queue, they are delivered within seconds.`;
    if (done.remaining) text += ` ${done.remaining} still match: re-drive again for the next page.`;
  }
  return (
    <p class="notice" id="notice" role="status">
      {text}
    </p>
  );
}
