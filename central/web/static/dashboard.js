// Schulwart central dashboard: refresh the overview without a full reload, submit filters on change.
// No inline script anywhere (the Content-Security-Policy allows only this file).
"use strict";

function refreshLive(live) {
  const params = new URLSearchParams(window.location.search);
  params.set("fragment", "1");
  fetch(window.location.pathname + "?" + params.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } })
    .then((response) => {
      if (response.redirected || !response.ok) {
        // Session ended or a refusal: a full load shows the login page or the message.
        if (response.status === 401 || response.redirected) window.location.reload();
        return null;
      }
      return response.text();
    })
    .then((html) => {
      if (html === null) return;
      // Parsed as an inert document and moved in as nodes: the server escaped every name.
      const doc = new DOMParser().parseFromString("<div>" + html + "</div>", "text/html");
      const fresh = doc.body.firstElementChild;
      live.replaceChildren(...Array.from(fresh.childNodes));
      live.dataset.refreshedAt = String(Date.now());
    })
    .catch(() => { /* offline for a moment: the next round tries again */ });
}

document.addEventListener("DOMContentLoaded", () => {
  const live = document.getElementById("live");
  if (live) {
    const seconds = Math.max(5, Number(live.dataset.refresh || "30"));
    window.setInterval(() => refreshLive(live), seconds * 1000);
  }
  for (const form of document.querySelectorAll("form.filters")) {
    for (const select of form.querySelectorAll("select")) {
      select.addEventListener("change", () => form.submit());
    }
  }
  document.body.dataset.ready = "1";
});
