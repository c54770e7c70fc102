// Reports people hand on: the selected group's month as CSV or a spreadsheet (in the page's language,
// the site's days), and a printable page for the city's monthly indicators.
import { session } from "./api.js";
import { el } from "./dom.js";
import { explain, place } from "./i18n.js";

const $ = (id) => document.getElementById(id);

export class Reports {
  constructor({ group, onError }) {
    this.group = group;
    this.onError = onError;
    $("report-csv").addEventListener("click", () => this.download("csv").catch(onError));
    $("report-xlsx").addEventListener("click", () => this.download("xlsx").catch(onError));
    $("report-month").addEventListener("change", () => this.link());
    // opened by script, the new tab starts with a copy of this tab's session (a plain link's does not)
    $("report-print").addEventListener("click", (event) => {
      event.preventDefault();
      window.open($("report-print").href, "_blank");
    });
  }

  /** The site's month now, not the browser's: around midnight they differ (the browser's
   * next month had "not begun" at the site). Called once the site's zone is known. */
  showThisMonth() {
    const format = new Intl.DateTimeFormat("en-US", { timeZone: place.timeZone, year: "numeric", month: "2-digit" });
    const parts = Object.fromEntries(format.formatToParts(new Date()).map((p) => [p.type, p.value]));
    $("report-month").value = `${parts.year}-${parts.month}`;
    this.link();
  }

  query(format) {
    return new URLSearchParams({ group: this.group(), month: $("report-month").value, format, lang: place.lang });
  }

  /** The printable page reads the same report with the same session. */
  link() {
    $("report-print").href = `report.html?${this.query("json")}`;
  }

  async download(format) {
    $("report-error").textContent = "";
    const response = await fetch(`/api/v1/monthly-report?${this.query(format)}`, {
      headers: { Authorization: `Bearer ${session.token}` },
    });
    if (!response.ok) {
      const body = await response.json().catch(() => null);
      const error = body && body.error ? body.error : { message: `HTTP ${response.status}` };
      $("report-error").textContent = explain({ status: response.status, code: error.code, message: error.message });
      return;
    }
    const name = (response.headers.get("content-disposition") || "").match(/filename="([^"]+)"/);
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: name ? name[1] : `report.${format}` });
    document.body.append(link);
    link.click();
    link.remove();
  }
}
