/* The device page's local content upload from a phone: each file goes up in 1 MiB pieces.
   The box remembers how many bytes arrived, so when the Wi-Fi drops the page waits, asks
   where the box stands and goes on from there; nothing already sent is sent again.
   Hand-written rather than tus-js-client: the box speaks a three-call protocol of its own
   (begin, ask, put at an offset) and this is fifty lines. */
(function () {
  "use strict";
  var form = document.getElementById("local-form");
  if (!form) return;
  var PIECE = 1024 * 1024;
  var csrf = form.getAttribute("data-csrf");
  var begin = form.getAttribute("data-begin");
  var input = document.getElementById("local-files");
  var bar = document.getElementById("local-bar");
  var say = document.getElementById("local-say");
  var button = document.getElementById("local-submit");

  function wait(ms) { return new Promise(function (r) { setTimeout(r, ms); }); }
  function mb(n) { return (n / 1048576).toFixed(1) + " MB"; }

  async function json(resp) {
    var data = {};
    try { data = await resp.json(); } catch (e) { /* not JSON */ }
    if (!resp.ok && resp.status !== 409) throw Object.assign(new Error(data.detail || ("HTTP " + resp.status)), {final: resp.status < 500});
    return data;
  }

  async function send(file, done, total) {
    var body = new FormData();
    body.append("csrf", csrf); body.append("name", file.name); body.append("size", String(file.size));
    var started = await json(await fetch(begin, {method: "POST", body: body, headers: {"Accept": "application/json"}}));
    var url = begin + "/" + started.token, offset = 0, tries = 0;
    while (offset < file.size) {
      try {
        var resp = await fetch(url + "?offset=" + offset, {method: "PUT", body: file.slice(offset, offset + PIECE),
          headers: {"X-CSRF-Token": csrf, "Content-Type": "application/octet-stream", "Accept": "application/json"}});
        var answer = await json(resp);
        offset = answer.received;
        tries = 0;
      } catch (e) {
        if (e.final) throw e;
        tries += 1;  // the Wi-Fi dropped: wait, ask the box where it stands, go on from there
        say.textContent = "网络断了，正在重新连接…（第 " + tries + " 次） Connection lost, retrying";
        await wait(Math.min(30000, 1000 * tries));
        try { offset = (await json(await fetch(url, {headers: {"Accept": "application/json"}}))).received; } catch (e2) { continue; }
      }
      bar.value = (done + offset) / total;
      say.textContent = "正在上传 " + file.name + "：" + mb(done + offset) + " / " + mb(total);
    }
    return started.token;
  }

  form.addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var files = Array.prototype.slice.call(input.files || []);
    if (!files.length) { say.textContent = "请先选择文件。 Choose files first."; form.querySelector("#local-progress").hidden = false; return; }
    form.querySelector("#local-progress").hidden = false;
    button.disabled = true;
    var total = files.reduce(function (s, f) { return s + f.size; }, 0), done = 0;
    try {
      for (var i = 0; i < files.length; i++) {
        var token = await send(files[i], done, total);
        done += files[i].size;
        var hidden = document.createElement("input");
        hidden.type = "hidden"; hidden.name = "token"; hidden.value = token;
        form.appendChild(hidden);
      }
      say.textContent = "上传完成，正在检查和添加，请稍等… Uploaded; checking and adding";
      form.submit();
    } catch (e) {
      say.textContent = "没有上传成功：" + e.message;
      button.disabled = false;
    }
  });
})();
