/* The survey builder (web/survey_form.html): add, remove and move questions and choices
   without losing what was typed, renumbering the flat field names (q-<i>-…, q-<i>-c-<j>-…)
   the server reads; and live SMS segment counts from the segments endpoint. The form posts
   whole without this script. */
(function () {
  "use strict";
  var form = document.getElementById("survey-form");
  if (!form) { return; }
  var list = document.getElementById("questions");
  var questionTemplate = document.getElementById("question-template");
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var segmentsUrl = form.getAttribute("data-segments-url");
  var ATTRS = ["name", "id", "for"];

  function rename(root, pattern, replacement) {
    root.querySelectorAll("[name], [id], [for]").forEach(function (el) {
      ATTRS.forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value && pattern.test(value)) {
          el.setAttribute(attr, value.replace(pattern, replacement));
        }
      });
    });
  }

  function questions() {
    return Array.prototype.filter.call(list.children, function (el) {
      return el.hasAttribute("data-question");
    });
  }

  function renumber() {
    var all = questions();
    all.forEach(function (q, i) {
      q.querySelector("[data-number]").textContent = String(i + 1);
      rename(q, /^q-[^-]+-/, "q-" + i + "-");
      var choices = q.querySelectorAll("[data-choice-list] > [data-choice]");
      choices.forEach(function (c, j) {
        rename(c, /^q-[^-]+-c-[^-]+-/, "q-" + i + "-c-" + j + "-");
      });
      q.querySelector("[data-choice-count]").value = String(choices.length);
    });
    form.querySelector("[data-question-count]").value = String(all.length);
  }

  function reveal(root) {
    root.querySelectorAll("[data-js]").forEach(function (el) { el.hidden = false; });
  }

  function addQuestion() {
    var block = questionTemplate.content.firstElementChild.cloneNode(true);
    list.appendChild(block);
    reveal(block);
    showChoices(block);
    renumber();
    block.querySelector("input").focus();
  }

  function addChoice(q) {
    var template = q.querySelector("template[data-choice-template]");
    var row = template.content.firstElementChild.cloneNode(true);
    q.querySelector("[data-choice-list]").appendChild(row);
    reveal(row);
    renumber();
    row.querySelector("input").focus();
  }

  form.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-action]");
    if (!button) { return; }
    var action = button.getAttribute("data-action");
    var q = button.closest("[data-question]");
    if (action === "add-question") {
      addQuestion();
    } else if (action === "add-choice") {
      addChoice(q);
    } else if (action === "remove-choice") {
      button.closest("[data-choice]").remove();
      renumber();
    } else if (action === "remove") {
      q.remove();
      renumber();
    } else if (action === "up" && q.previousElementSibling) {
      list.insertBefore(q, q.previousElementSibling);
      renumber();
      button.focus();
    } else if (action === "down" && q.nextElementSibling) {
      list.insertBefore(q.nextElementSibling, q);
      renumber();
      button.focus();
    } else {
      return;
    }
    event.preventDefault();
  });

  // Choices only matter for the select types: hide the box for the others (it still posts).
  function showChoices(q) {
    var type = q.querySelector("[data-type]");
    var box = q.querySelector("[data-choices]");
    if (type && box) {
      box.hidden = type.value !== "single_select" && type.value !== "multi_select";
    }
  }

  form.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches("[data-type]")) {
      showChoices(event.target.closest("[data-question]"));
    }
  });

  var timers = new WeakMap();

  function showSegments(textarea) {
    var out = textarea.parentNode.querySelector("[data-seg-out]");
    if (!out) { return; }
    var body = new FormData();
    body.append("text", textarea.value);
    fetch(segmentsUrl, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf }
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (e) {
      if (!e) { return; }
      out.textContent = "";
      if (e.error) {
        var span = document.createElement("span");
        span.className = "field-error";
        span.textContent = e.error;
        out.appendChild(span);
      } else if (e.characters) {
        out.textContent = e.characters + " characters, " + e.encoding + ", " + e.segments +
          " SMS segment" + (e.segments === 1 ? "" : "s");
      }
    }).catch(function () { /* the count is only a hint */ });
  }

  form.addEventListener("input", function (event) {
    var el = event.target;
    if (!el.matches || !el.matches("textarea[data-seg]")) { return; }
    clearTimeout(timers.get(el));
    timers.set(el, setTimeout(function () { showSegments(el); }, 300));
  });

  reveal(form);
  questions().forEach(showChoices);
})();
