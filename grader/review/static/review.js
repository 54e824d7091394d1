// The review page's actions and keyboard shortcuts. Every action is one JSON POST, saved by the
// server before it answers; the page then reloads, so it always shows what the database holds
// (other reviewers' changes included). The answer in focus survives the reload.
(function () {
  "use strict";

  const question = document.body.dataset.question || "";
  const who = document.getElementById("reviewer");
  const banner = document.getElementById("message");
  const NAME = "grader.review.reviewer";
  const FOCUS = "grader.review.focus." + question;
  const FLASH = "grader.review.flash";

  if (who) {
    who.value = localStorage.getItem(NAME) || who.value;
    who.addEventListener("change", function () { localStorage.setItem(NAME, who.value.trim()); });
  }

  function show(text, error) {
    banner.textContent = text;
    banner.className = "message" + (error ? " error" : "");
    banner.hidden = !text;
  }

  const flash = sessionStorage.getItem(FLASH);
  if (flash) {
    sessionStorage.removeItem(FLASH);
    show(flash, false);
  }

  async function post(url, body) {
    const reviewer = who ? who.value.trim() : "";
    if (!reviewer) {
      show("Type your name in the Reviewer box first: every action is recorded with it.", true);
      return;
    }
    let response;
    try {
      response = await fetch(url, {
        method: "POST",
        headers: {"Content-Type": "application/json", "Accept": "application/json"},
        credentials: "same-origin",
        body: JSON.stringify(Object.assign({reviewer: reviewer}, body)),
      });
    } catch (err) {
      show("The review server cannot be reached; nothing was saved. (" + err.message + ")", true);
      return;
    }
    let data = {};
    try { data = await response.json(); } catch (err) { data = {}; }
    if (!response.ok) {
      show((data.error && data.error.message) || ("The server refused: HTTP " + response.status), true);
      return;
    }
    const current = document.querySelector(".answer.current");
    if (current) sessionStorage.setItem(FOCUS, current.id);
    sessionStorage.setItem(FLASH, data.message || "Saved.");
    location.reload();
  }

  const api = function (verb) { return "/api/q/" + encodeURIComponent(question) + "/" + verb; };
  const refOf = function (answer) { return JSON.parse(answer.dataset.ref); };
  const answers = function () { return Array.from(document.querySelectorAll(".answer")); };

  function focusAnswer(answer) {
    if (!answer) return;
    answers().forEach(function (a) { a.classList.remove("current"); });
    answer.classList.add("current");
    const details = answer.closest("details");
    if (details) details.open = true;
    answer.focus({preventScroll: true});
    answer.scrollIntoView({block: "nearest"});
  }

  function current() {
    return document.querySelector(".answer.current") || answers()[0] || null;
  }

  function step(delta, unreviewed) {
    const list = answers();
    let i = list.indexOf(current());
    for (let n = 0; n < list.length; n++) {
      i = (i + delta + list.length) % list.length;
      if (!unreviewed || !list[i].classList.contains("reviewed")) return focusAnswer(list[i]);
    }
    show("Every answer of this question is reviewed.", false);
  }

  const accept = function (answer) { return post(api("accept"), {answers: [refOf(answer)]}); };
  const acceptCluster = function (cluster) {
    const open = JSON.parse(cluster.dataset.open);
    if (!open.length) return show("Every answer of this cluster is reviewed already.", false);
    return post(api("accept"), {answers: open});
  };
  const setPoints = function (refs, value) {
    const points = Number(value);
    if (value === "" || !Number.isFinite(points)) return show("Type a number of points.", true);
    return post(api("points"), {answers: refs, points: points});
  };
  const undo = function () { return post("/api/undo", {}); };

  document.addEventListener("click", function (event) {
    const jump = event.target.closest("[data-jump]");
    if (jump) {
      event.preventDefault();
      focusAnswer(document.getElementById(jump.dataset.jump));
      return;
    }
    const button = event.target.closest("button[data-act]");
    if (!button) {
      const answer = event.target.closest(".answer");
      if (answer && !event.target.closest("input, textarea, button, a")) focusAnswer(answer);
      return;
    }
    const answer = button.closest(".answer");
    if (answer) focusAnswer(answer);
    const act = button.dataset.act;
    if (act === "undo") return undo();
    if (act === "regrade") return post(api("regrade"), {});
    if (act === "accept") return accept(answer);
    if (act === "accept-cluster") return acceptCluster(button.closest(".cluster"));
    if (act === "concept") {
      const pressed = button.getAttribute("aria-pressed") === "true";
      return post(api("concept"), {
        answer: refOf(answer), concept: button.dataset.concept,
        stated: pressed ? null : button.dataset.stated === "true",
      });
    }
  });

  document.addEventListener("submit", function (event) {
    const form = event.target.closest("form[data-act]");
    if (!form) return;
    event.preventDefault();
    const answer = form.closest(".answer");
    if (answer) focusAnswer(answer);
    const act = form.dataset.act;
    if (act === "points") return setPoints([refOf(answer)], form.elements.points.value);
    if (act === "points-cluster") {
      return setPoints(JSON.parse(form.closest(".cluster").dataset.all), form.elements.points.value);
    }
    if (act === "comment") return post(api("comment"), {answer: refOf(answer), comment: form.elements.comment.value});
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (event.target.closest("input, textarea, select")) {
      if (event.key === "Escape") event.target.blur();
      return;
    }
    const key = event.key;
    if (key === "u") return undo();
    if (!question) return;
    const answer = current();
    if (key === "j" || key === "ArrowDown") { event.preventDefault(); return step(1, false); }
    if (key === "k" || key === "ArrowUp") { event.preventDefault(); return step(-1, false); }
    if (key === "n") return step(1, true);
    if (!answer) return;
    if (key === "a") return accept(answer);
    if (key === "A") return acceptCluster(answer.closest(".cluster"));
    if (/^[0-9]$/.test(key)) return setPoints([refOf(answer)], key);
  });

  const remembered = sessionStorage.getItem(FOCUS);
  if (remembered && document.getElementById(remembered)) {
    focusAnswer(document.getElementById(remembered));
  } else if (location.hash) {
    const target = document.getElementById(location.hash.slice(1));
    if (target && target.classList.contains("answer")) focusAnswer(target);
  }
})();
