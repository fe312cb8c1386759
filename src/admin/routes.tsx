/**
 * The operator console, mounted at `/admin`: server-rendered pages behind a
 * sign-in with ADMIN_TOKEN. The JSON routes beside it keep their bearer token.
 */
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { csrf } from "hono/csrf";
import type { Child } from "hono/jsx";
import { NONCE, type SecureHeadersVariables, secureHeaders } from "hono/secure-headers";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import * as z from "zod/mini";
import { requireDeadLetter, requireLedger } from "../delivery/dead-letters.ts";
import type { DeadLetter, DeadLetterFilter } from "../delivery/ledger.ts";
import { BridgeError } from "../shared/errors.ts";
import { healthOf } from "../shared/health.ts";
import { type AppEnv, bodyReader } from "../shared/http.ts";
import { matchesAnySecret } from "../shared/secrets.ts";
import { describeUnready, parseAlertSettings, settingsFor } from "../shared/settings.ts";
import { parseDeadLetterQuery } from "./dead-letter-query.ts";
import "../shared/zod.ts";
import { AlertsPanel } from "./alerts/panel.tsx";
import { alertStatus } from "./alerts/status.ts";
import {
  deadLetters,
  deleteOne,
  hourStart,
  latencyByRange,
  redriveMatching,
  redriveOne,
  weekOfCounters,
} from "./data.ts";
import { LatencyPanel } from "./latency.tsx";
import { countFailure } from "./limits.ts";
import {
  BASE,
  CONSOLE,
  ConfirmAction,
  DeadLettersSection,
  DescribeFilter,
  type Done,
  FlowSection,
  filterQuery,
  Layout,
  LetterDetail,
  Notice,
  SignInForm,
  StatusPanel,
} from "./pages.tsx";
import { endSession, hasSession, startSession } from "./session.ts";
import { SAMPLES, testSegmentEvents, testVeroWebhook } from "./tester.ts";
import { type Direction, TesterPage } from "./tester-page.tsx";

type ConsoleEnv = AppEnv & { Variables: SecureHeadersVariables };
type ConsoleContext = Context<ConsoleEnv>;

const HOUR_MS = 3_600_000;

/** No script at all, styles by nonce only, no framing, forms post only here. */
const pageHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    styleSrc: [NONCE],
    imgSrc: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
  },
  referrerPolicy: "no-referrer",
});

const noStore: MiddlewareHandler = async (c, next) => {
  await next();
  c.header("Cache-Control", "no-store");
};

function adminTokens(c: ConsoleContext): readonly string[] | undefined {
  const state = settingsFor(c.env).admin;
  return state.ready ? state.settings.adminTokens : undefined;
}

function page(
  c: ConsoleContext,
  title: string,
  body: Child,
  options: { signedIn?: boolean; status?: ContentfulStatusCode } = {},
) {
  return c.html(
    `<!doctype html>${(
      <Layout title={title} nonce={c.get("secureHeadersNonce")} signedIn={options.signedIn ?? true}>
        {body}
      </Layout>
    )}`,
    options.status ?? 200,
  );
}

/** Every page but sign-in: a signed-out visitor is sent to sign in, and sees no data. */
const requireSession: MiddlewareHandler<ConsoleEnv> = async (c, next) => {
  const tokens = adminTokens(c);
  if (!tokens || !(await hasSession(c, tokens, c.env.LEDGER))) return c.redirect(`${CONSOLE}/sign-in`, 303);
  await next();
};

/** The console's dead-letter filter: the JSON routes' one, without their page size. */
function parseFilter(input: Record<string, unknown>): DeadLetterFilter {
  const { limit: _limit, ...filter } = parseDeadLetterQuery(input);
  return filter;
}

const count = z.pipe(z.coerce.number(), z.int().check(z.nonnegative()));
const doneSchema = z.union([
  z.object({ done: z.literal("redriven"), count, remaining: z.optional(count) }),
  z.object({ done: z.literal("deleted"), count }),
  z.object({ done: z.literal("signed-out") }),
]);

/** Only these fixed sentences: a crafted link cannot put words on the page. */
function parseDone(query: Record<string, string>): Done | undefined {
  const parsed = doneSchema.safeParse(query);
  return parsed.success ? parsed.data : undefined;
}

function doneQuery(done: Done): string {
  return `?${new URLSearchParams(Object.entries(done).map(([key, value]) => [key, String(value)])).toString()}`;
}

const signInForm = z.object({ token: z.string().check(z.minLength(1), z.maxLength(1000)) });

async function dashboard(c: ConsoleContext) {
  const now = new Date();
  const filter = parseFilter(c.req.query());
  const db = c.env.LEDGER;
  const [rows, latency, page_, alerts] = await Promise.all([
    db ? weekOfCounters(db, now) : undefined,
    db ? latencyByRange(db, now) : undefined,
    db ? deadLetters(db, filter) : undefined,
    alertStatus(c.env, now),
  ]);
  const settings = settingsFor(c.env);
  const problems: Record<string, string> = {};
  for (const name of ["inbound", "outbound"] as const) {
    const state = settings[name];
    if (!state.ready) problems[name] = describeUnready(name, state);
  }
  return page(
    c,
    "Console",
    <>
      <Notice done={parseDone(c.req.query())} />
      <AlertsPanel status={alerts} />
      <StatusPanel health={healthOf(c.env)} problems={problems} ledgerBound={db !== undefined} />
      <FlowSection rows={rows} until={new Date(hourStart(now).getTime() + HOUR_MS)} />
      {latency ? (
        <section class="panel" id="latency">
          <h2>Delivery latency</h2>
          <LatencyPanel latency={latency} latencySeconds={parseAlertSettings(c.env).latencySeconds} />
        </section>
      ) : undefined}
      <DeadLettersSection page={page_} filter={filter} />
    </>,
  );
}

/** The console's forms hold a token or a filter: 8 KB is ample, and nothing larger is buffered. */
const FORM_MAX_BYTES = 8_192;
/** The event tester's form holds a pasted event or batch: Segment's own 500 KB batch limit. */
const TESTER_MAX_BYTES = 512_000;
const limitTo = (maxBytes: number) =>
  bodyReader({
    decode: false,
    limit: {
      maxBytes,
      tooLarge: () => new BridgeError(413, "payload_too_large", `form body is over ${maxBytes} bytes`),
    },
  });
const smallForm = limitTo(FORM_MAX_BYTES);
const testerForm = limitTo(TESTER_MAX_BYTES);
const formLimit: MiddlewareHandler<ConsoleEnv> = (c, next) =>
  (c.req.path === `${CONSOLE}/tester` ? testerForm : smallForm)(c, next);

const testerInput = z.object({
  direction: z.enum(["outbound", "inbound"]),
  payload: z.string().check(z.minLength(1)),
  send: z.optional(z.string()),
});

/** The tester's page: what was pasted, and what the bridge would do (or did) with it, or why it cannot say. */
async function runTester(c: ConsoleContext) {
  const form = testerInput.safeParse(await formOf(c));
  if (!form.success)
    return page(c, "Event tester", <TesterPage direction="outbound" payload="" problem="Paste a payload to test." />, {
      status: 400,
    });
  const { direction, payload, send } = form.data;
  try {
    const test = direction === "outbound" ? testSegmentEvents : testVeroWebhook;
    const result = await test(c.env, payload, send === "1");
    return page(c, "Event tester", <TesterPage direction={direction} payload={payload} result={result} />);
  } catch (error) {
    if (!(error instanceof BridgeError)) throw error;
    return page(c, "Event tester", <TesterPage direction={direction} payload={payload} problem={error.message} />, {
      status: error.status,
    });
  }
}

/** The tester's empty form, or one filled with a sample or a dead letter's body. */
async function testerPage(c: ConsoleContext) {
  const sample = c.req.query("sample");
  const letterId = c.req.query("letter");
  let direction: Direction = "outbound";
  let payload = "";
  if (sample && Object.hasOwn(SAMPLES, sample)) {
    const chosen = SAMPLES[sample] as (typeof SAMPLES)[string];
    direction = chosen.direction;
    payload = JSON.stringify(chosen.payload, null, 2);
  } else if (letterId) {
    const letter = await requireDeadLetter(requireLedger(c.env), letterId);
    direction = letter.source === "vero" ? "outbound" : "inbound";
    payload = JSON.stringify(letter.body, null, 2);
  }
  return page(c, "Event tester", <TesterPage direction={direction} payload={payload} />);
}

async function formOf(c: ConsoleContext): Promise<Record<string, unknown>> {
  let body: Record<string, unknown>;
  try {
    body = await c.req.parseBody();
  } catch (error) {
    // A body that is not the form it claims to be (a broken multipart, say): the sender's mistake.
    throw new BridgeError(400, "bad_request", "the form could not be read; send it as the console's page does", {
      cause: error,
    });
  }
  return Object.fromEntries(Object.entries(body).filter(([, value]) => typeof value === "string"));
}

const letterPath = (id: string) => `${CONSOLE}/dead-letters/${encodeURIComponent(id)}`;

/** The confirmation page of an action on one letter: its question, and the form that posts it. */
async function confirmForLetter(
  c: ConsoleContext,
  action: "redrive" | "delete",
  title: string,
  question: (letter: DeadLetter) => Child,
) {
  const letter = await requireDeadLetter(requireLedger(c.env), c.req.param("id") ?? "");
  return page(
    c,
    title,
    <ConfirmAction
      question={question(letter)}
      action={`${letterPath(letter.id)}/${action}`}
      button={title}
      danger={action === "delete"}
      back={letterPath(letter.id)}
    />,
  );
}

/** Mounted at `/admin`, before the JSON routes: it answers only its own paths. */
export const consoleRoutes = new Hono<ConsoleEnv>()
  .use("/", pageHeaders, noStore)
  .use("/console/*", pageHeaders, noStore, csrf(), formLimit)
  .get("/console/sign-in", (c) => {
    const state = settingsFor(c.env).admin;
    if (!state.ready) {
      return page(c, "Sign in", <SignInForm problem={describeUnready("admin", state)} />, {
        signedIn: false,
        status: 503,
      });
    }
    return page(
      c,
      "Sign in",
      <>
        <Notice done={parseDone(c.req.query())} />
        <SignInForm />
      </>,
      { signedIn: false },
    );
  })
  .post("/console/sign-in", async (c) => {
    const state = settingsFor(c.env).admin;
    if (!state.ready) {
      return page(c, "Sign in", <SignInForm problem={describeUnready("admin", state)} />, {
        signedIn: false,
        status: 503,
      });
    }
    const form = signInForm.safeParse(await formOf(c));
    if (!form.success || !(await matchesAnySecret(form.data.token, state.settings.adminTokens))) {
      // Only a wrong token counts, and only it is held back: the right one always signs in.
      if (!(await countFailure(c, "sign-in"))) {
        return page(
          c,
          "Sign in",
          <SignInForm problem="Too many failed sign-in attempts from here. Wait a minute, then try again." />,
          { signedIn: false, status: 429 },
        );
      }
      return page(c, "Sign in", <SignInForm problem="That is not the admin token. Nothing is shown without it." />, {
        signedIn: false,
        status: 401,
      });
    }
    await startSession(c, form.data.token, c.env.LEDGER);
    return c.redirect(BASE, 303);
  })
  .post("/console/sign-out", async (c) => {
    await endSession(c, adminTokens(c) ?? [], c.env.LEDGER);
    return c.redirect(`${CONSOLE}/sign-in${doneQuery({ done: "signed-out" })}`, 303);
  })
  .get("/", requireSession, dashboard)
  .use("/console/*", requireSession)
  .get("/console/tester", testerPage)
  .post("/console/tester", runTester)
  .get("/console/redrive", async (c) => {
    const filter = parseFilter({ ...c.req.query(), cursor: undefined });
    const { total } = await deadLetters(requireLedger(c.env), { ...filter, limit: 1 });
    return page(
      c,
      "Re-drive",
      <ConfirmAction
        question={
          <>
            Re-drive {total} <DescribeFilter filter={filter} />? Each goes back to the queue it came from and is removed
            from this list; at most 100 per confirmation.
          </>
        }
        action={`${CONSOLE}/redrive`}
        button={`Re-drive ${Math.min(total, 100)}`}
        filter={filter}
        back={`${BASE}${filterQuery(filter)}#dead-letters`}
      />,
    );
  })
  .post("/console/redrive", async (c) => {
    const { cursor: _cursor, ...filter } = parseFilter(await formOf(c));
    const result = await redriveMatching(c.env, requireLedger(c.env), filter);
    return c.redirect(
      `${BASE}${doneQuery({ done: "redriven", count: result.redriven, remaining: result.remaining })}`,
      303,
    );
  })
  .get("/console/dead-letters/:id", async (c) => {
    const letter = await requireDeadLetter(requireLedger(c.env), c.req.param("id"));
    return page(c, "Dead letter", <LetterDetail letter={letter} />);
  })
  .get("/console/dead-letters/:id/redrive", (c) =>
    confirmForLetter(c, "redrive", "Re-drive", (letter) => (
      <>
        Re-drive dead letter <code>{letter.id}</code> to the {letter.source} queue? It is removed from this list and
        delivered again; if its cause is not fixed, it comes back.
      </>
    )),
  )
  .post("/console/dead-letters/:id/redrive", async (c) => {
    await redriveOne(c.env, requireLedger(c.env), c.req.param("id"));
    return c.redirect(`${BASE}${doneQuery({ done: "redriven", count: 1 })}`, 303);
  })
  .get("/console/dead-letters/:id/delete", (c) =>
    confirmForLetter(c, "delete", "Delete", (letter) => (
      <>
        Delete dead letter <code>{letter.id}</code> for good? Its event is then never delivered.
      </>
    )),
  )
  .post("/console/dead-letters/:id/delete", async (c) => {
    await deleteOne(requireLedger(c.env), c.req.param("id"));
    return c.redirect(`${BASE}${doneQuery({ done: "deleted", count: 1 })}`, 303);
  });
