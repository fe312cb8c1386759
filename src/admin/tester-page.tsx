/** The console's event tester: one form, and what the bridge would do (or did) with what was pasted. */
import { CONSOLE } from "./pages.tsx";
import { SAMPLES, type TesterResult } from "./tester.ts";

export type Direction = TesterResult["direction"];

const LABEL: Record<Direction, string> = {
  outbound: "Segment event → Vero",
  inbound: "Vero webhook → Segment",
};

export function TesterPage(props: { direction: Direction; payload: string; result?: TesterResult; problem?: string }) {
  const { result } = props;
  return (
    <>
      <section class="panel" id="tester">
        <h2>Event tester</h2>
        <p>
          Paste what Segment or Vero would send (or a dead letter's body): the dry run shows the filter decision and the
          exact calls, the credential masked, and sends nothing. Samples:{" "}
          {Object.entries(SAMPLES).map(([key, sample]) => (
            <>
              <a href={`${CONSOLE}/tester?sample=${key}`}>{sample.label}</a>{" "}
            </>
          ))}
        </p>
        <form method="post" action={`${CONSOLE}/tester`}>
          <p>
            <label>
              Direction{" "}
              <select name="direction">
                {(["outbound", "inbound"] as const).map((direction) => (
                  <option value={direction} selected={direction === props.direction}>
                    {LABEL[direction]}
                  </option>
                ))}
              </select>
            </label>
          </p>
          <textarea name="payload" rows={14} cols={100} required aria-label="payload">
            {props.payload}
          </textarea>
          <p>
            <button type="submit" name="send" value="">
              Dry run
            </button>{" "}
            <button type="submit" name="send" value="1" class="danger">
              Send for real
            </button>
          </p>
        </form>
      </section>
      {props.problem && (
        <p class="error" role="alert">
          {props.problem}
        </p>
      )}
      {result && (
        <section class="panel" id="tester-result">
          <h2>{result.sent ? "Sent" : "Dry run: nothing sent"}</h2>
          {result.sent?.map((sent) => (
            <p class={sent.ok ? "notice" : "error"} data-sent={sent.ok ? "ok" : "failed"}>
              {sent.ok
                ? sent.detail
                : `Not delivered${sent.status ? ` (${sent.status})` : ""}: ${sent.error}${sent.retryable ? "; a retry may succeed" : ""}`}
            </p>
          ))}
          {result.events.map((event) => (
            <div data-outcome={event.outcome}>
              <h3>
                {event.messageId ?? `event ${event.index + 1}`}: {event.outcome}
                {event.filter && ` by filter “${event.filter}”`}
              </h3>
              {(event.reason || event.error) && <p>{event.reason ?? event.error}</p>}
              {event.editedBy && <p>Properties removed by: {event.editedBy.join(", ")}</p>}
              {event.calls.map((call) => (
                <pre>
                  {`${call.method} ${call.url}\n${call.headers ? `${Object.entries(call.headers).map(([name, value]) => `${name}: ${value}`)}\n` : ""}\n${JSON.stringify(call.body, null, 2)}`}
                </pre>
              ))}
            </div>
          ))}
        </section>
      )}
    </>
  );
}
