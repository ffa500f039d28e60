// Show that an import is running (the upload and import happen in one request).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("import-form");
  if (!form) return;
  form.addEventListener("submit", function () {
    document.getElementById("import-busy").hidden = false;
    form.querySelector("button[type=submit]").disabled = true;
  });
});
