import { SessionAction, SessionState } from "@dmesh/contracts/dmesh/processing/v1/session_pb.js";
import { describe, expect, it } from "vitest";
import { decideControl } from "../src/sessions/session-control.js";

const { QUEUED, RUNNING, PAUSED, COMPLETED, FAILED, CANCELLED } = SessionState;
const { PAUSE, RESUME, CANCEL, RESTART } = SessionAction;

/** The decision, or the refusal's message. */
function decide(state: SessionState, action: SessionAction, running: boolean): string {
  try {
    return decideControl(state, action, running);
  } catch (err) {
    return (err as Error).message;
  }
}

describe("the session state machine", () => {
  it("maps each state and action to its transition", () => {
    expect(decide(QUEUED, PAUSE, false)).toBe("pause-queued");
    expect(decide(RUNNING, PAUSE, true)).toBe("pause-running");
    expect(decide(PAUSED, RESUME, false)).toBe("resume");
    expect(decide(RUNNING, CANCEL, true)).toBe("cancel-running");
    expect(decide(QUEUED, CANCEL, false)).toBe("cancel-idle");
    expect(decide(PAUSED, CANCEL, false)).toBe("cancel-idle");
    for (const state of [COMPLETED, FAILED, CANCELLED, PAUSED])
      expect(decide(state, RESTART, false)).toBe("restart");
  });

  it("refuses what makes no sense, saying why", () => {
    expect(decide(COMPLETED, PAUSE, false)).toBe("action: cannot pause a session that is completed");
    expect(decide(RUNNING, RESUME, true)).toBe("action: cannot resume a session that is running");
    expect(decide(FAILED, CANCEL, false)).toBe("action: cannot cancel a session that is failed");
    expect(decide(RUNNING, RESTART, true)).toBe(
      "action: cannot restart (cancel it first) a session that is running",
    );
    expect(decide(QUEUED, SessionAction.UNSPECIFIED, false)).toBe(
      "action: must be PAUSE, RESUME, CANCEL or RESTART",
    );
  });
});
