// Asking the API what a draft (a program or a calendar) would do: its answer, or its refusal shown
// where the engineer is typing — and the save button off while it would be refused.
import { api, Unauthorized } from "./api.js";
import { explain } from "./i18n.js";

/** From the start of this hour, for `hours`. */
export function nextHours(hours) {
  const from = new Date();
  from.setMinutes(0, 0, 0);
  return [from, new Date(from.getTime() + hours * 3600 * 1000)];
}

/** The preview of a draft, or null after showing why the API would refuse it. */
export async function askDraft(body, { error, save, changes }) {
  try {
    const out = await api("/api/v1/schedules/preview", { method: "POST", body });
    save.disabled = false;
    error.textContent = "";
    return out;
  } catch (err) {
    if (err instanceof Unauthorized) throw err;
    save.disabled = true;
    error.textContent = explain(err);
    changes.replaceChildren();
    return null;
  }
}
