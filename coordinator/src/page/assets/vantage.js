// Vantage status page: live refresh. The page works without this file (it then reloads
// itself every 30 s); with it, the page listens to the coordinator's event stream and swaps
// in a fresh copy of <main> from the server whenever something changes. When the stream is
// unavailable, it refreshes <main> every 30 s instead.
(function () {
  "use strict";
  var main = document.getElementById("main");
  var live = document.getElementById("live");
  if (!main || !live || !main.dataset.partial) {
    return;
  }
  var STREAM = "/api/v1/stream?types=vendor,transition,incident,probe";
  var POLL_MS = 30000; // without the stream
  var LIVE_POLL_MS = 60000; // with it: relative times and charts still move
  var RETRY_STREAM_MS = 60000; // after the server refused the stream
  var DEBOUNCE_MS = 500;

  var timer = null;
  var poller = null;
  var inflight = false;
  var again = false;
  var source = null;

  function indicate(state, text) {
    live.setAttribute("data-live", state);
    var label = live.querySelector(".text");
    if (label) {
      label.textContent = text;
    }
  }

  function swap(html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    var next = doc.getElementById("main");
    if (!next) {
      return;
    }
    // Keep what the reader opened or closed.
    var open = {};
    main.querySelectorAll("details[id]").forEach(function (d) {
      open[d.id] = d.open;
    });
    var x = window.scrollX;
    var y = window.scrollY;
    main.replaceChildren.apply(main, Array.prototype.slice.call(next.childNodes));
    main.querySelectorAll("details[id]").forEach(function (d) {
      if (Object.prototype.hasOwnProperty.call(open, d.id)) {
        d.open = open[d.id];
      }
    });
    window.scrollTo(x, y);
    main.setAttribute("data-refreshed", String(Date.now()));
  }

  function refresh() {
    timer = null;
    if (inflight) {
      again = true;
      return;
    }
    inflight = true;
    fetch(main.dataset.partial, {
      credentials: "same-origin",
      cache: "no-store",
      headers: { Accept: "text/html" },
    })
      .then(function (r) {
        if (r.status === 401) {
          // Signed out or the session expired: the full page leads to the sign-in.
          window.location.reload();
          return null;
        }
        if (!r.ok) {
          throw new Error("status " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        if (html !== null) {
          swap(html);
        }
      })
      .catch(function () {
        indicate("error", "update failed, retrying");
      })
      .then(function () {
        inflight = false;
        if (again) {
          again = false;
          schedule();
        }
      });
  }

  // Bursts of events (an incident opening changes several checks at once) make one fetch.
  function schedule() {
    if (timer === null) {
      timer = setTimeout(refresh, DEBOUNCE_MS);
    }
  }

  function poll(ms) {
    if (poller !== null) {
      clearInterval(poller);
    }
    poller = setInterval(schedule, ms);
  }

  function connect() {
    if (!window.EventSource) {
      indicate("polling", "refreshes every 30 s");
      poll(POLL_MS);
      return;
    }
    source = new EventSource(STREAM);
    source.onopen = function () {
      indicate("live", "live");
      poll(LIVE_POLL_MS);
      // Whatever happened while disconnected.
      schedule();
    };
    ["vendor", "transition", "incident", "probe", "dropped"].forEach(function (t) {
      source.addEventListener(t, schedule);
    });
    source.onerror = function () {
      poll(POLL_MS);
      if (source.readyState === EventSource.CLOSED) {
        // Refused (no stream on this coordinator yet, or signed out): refresh on a timer,
        // and try the stream again now and then.
        indicate("polling", "refreshes every 30 s");
        source = null;
        setTimeout(connect, RETRY_STREAM_MS);
      } else {
        indicate("reconnecting", "reconnecting\u2026");
      }
    };
  }

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) {
      schedule();
    }
  });
  indicate("connecting", "connecting\u2026");
  connect();
})();
