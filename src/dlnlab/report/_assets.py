"""The report's stylesheet and its one small script (the full table's filters); inline, nothing fetched."""

from ..experiments.table import TABLE_CSS

PAGE_CSS = TABLE_CSS + """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#1b1b1b;line-height:1.4}
main.dlnlab{max-width:1240px;margin:0 auto;padding:.6rem 1rem 3rem;box-sizing:border-box}
h1{margin:.2rem 0;font-size:1.6rem} h2{margin:1.6rem 0 .4rem;border-bottom:2px solid #e6e6e6}
h3{margin:1rem 0 .3rem} .sub{color:#555;margin:.1rem 0 .4rem}
nav a{margin-right:.8rem}
.box{border:1px solid #e3e3e3;border-radius:6px;padding:.5rem .8rem;background:#fcfcfc;font-size:.9rem}
.box p{margin:.3rem 0} .box table{width:auto;table-layout:auto}
.box td.num{min-width:4.5rem}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:1rem;margin:0 .3rem .2rem 0;font-size:.85rem}
.two{display:grid;grid-template-columns:minmax(0,3fr) minmax(0,2fr);gap:1rem;align-items:start}
.exp{display:grid;grid-template-columns:minmax(0,5fr) minmax(0,7fr);gap:1rem;align-items:start}
@media (max-width:900px){.two,.exp{grid-template-columns:minmax(0,1fr)}}
figure{margin:0 0 .8rem;border:1px solid #e3e3e3;padding:.4rem;border-radius:6px}
figure img{max-width:100%;height:auto;display:block;margin:auto}
.two figure img{max-height:440px;width:auto}
figcaption{font-size:.82rem;color:#333;margin-top:.3rem}
pre{background:#f7f7f7;padding:.5rem;overflow-x:auto;font-size:.75rem}
#filters label{margin-right:.8rem;font-size:.85rem} #filters select{max-width:14rem}
"""

#: filters of the full table: a row shows when it matches every chosen value (``data-*`` attributes); a claim's
#: group row shows when one of its rows does
FILTER_JS = """
function dlnFilter(){
  const want={};document.querySelectorAll('#filters select').forEach(s=>{if(s.value)want[s.name]=s.value;});
  let shown=0;
  document.querySelectorAll('#full tbody tr').forEach(r=>{
    if(r.classList.contains('g'))return;
    const ok=Object.keys(want).every(k=>r.dataset[k]===want[k]);r.hidden=!ok;shown+=ok;});
  document.querySelectorAll('#full tbody tr.g').forEach(g=>{
    let x=g.nextElementSibling,any=false;
    while(x&&!x.classList.contains('g')){any=any||!x.hidden;x=x.nextElementSibling;}
    g.hidden=!any;});
  document.getElementById('nshown').textContent=shown;
}
document.querySelectorAll('#filters select').forEach(s=>s.addEventListener('change',dlnFilter));
"""
