// Rate calculator enhancements: keep the minutes limit in step with the chosen
// facility, and show quotes without reloading the page. The page works fully
// without this script: the form submits to the server, which renders the result.
(function () {
  "use strict";
  var form = document.getElementById("quote-form");
  var result = document.getElementById("result");
  if (!form || !result || !window.fetch) { return; }
  var facility = document.getElementById("facility");
  var minutes = document.getElementById("minutes");
  var hint = document.getElementById("minutes-hint");

  function syncMaximum() {
    var option = facility.options[facility.selectedIndex];
    var max = option && option.getAttribute("data-max-minutes");
    if (max) {
      minutes.max = max;
      hint.textContent = hint.getAttribute("data-template").replace("{max}", max);
    } else {
      minutes.removeAttribute("max");
      hint.textContent = hint.getAttribute("data-any");
    }
  }

  function query() {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) { params.append(key, String(value)); });
    return params;
  }

  function clearFieldErrors() {
    var fields = form.querySelectorAll(".field");
    for (var i = 0; i < fields.length; i++) {
      fields[i].classList.remove("invalid");
      var control = fields[i].querySelector("input, select");
      control.removeAttribute("aria-invalid");
      var error = fields[i].querySelector(".error");
      if (error) {
        var described = control.getAttribute("aria-describedby") || "";
        control.setAttribute("aria-describedby", described.replace(" " + error.id, ""));
        error.parentNode.removeChild(error);
      }
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var params = query();
    clearFieldErrors();
    result.setAttribute("aria-busy", "true");
    var fragmentParams = new URLSearchParams(params);
    fragmentParams.set("fragment", "result");
    fetch("/?" + fragmentParams.toString(), { headers: { "Accept": "text/html" } })
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (html) {
        result.innerHTML = html;
        history.replaceState(null, "", "/?" + params.toString());
        var heading = result.querySelector("h2");
        if (heading) { heading.focus(); }
      })
      .catch(function () {
        // Fall back to an ordinary submission: the server renders the page.
        form.submit();
      })
      .then(function () { result.removeAttribute("aria-busy"); });
  });

  facility.addEventListener("change", syncMaximum);
  syncMaximum();
}());
