// `envelope prices [ls|show]`: what a USD budget can price — the catalog (@pydantic/genai-prices) and the user's
// `--prices` file over it — and which entry a model name resolves to.
import { Option, type Command } from 'commander';
import { catalogModels, catalogPrice } from '../../metering/catalog.js';
import { tablePrice, type ModelPrice, type PriceTable } from '../../metering/prices.js';
import { loadPrices, PRICE_FILE_EXAMPLE } from '../../metering/prices-file.js';
import { jsonOption } from '../options.js';
import { printJson } from '../output.js';
import { table } from '../table.js';

interface PricesFlags {
  prices?: string;
  provider?: string;
  json?: boolean;
}

interface PriceRow {
  model: string;
  /** `prices file`, or the catalog's provider id. */
  source: string;
  price: ModelPrice;
}

const pricesOption = (): Option => new Option('--prices <file>', 'your JSON price table, over the catalog (as serve takes it)').env('ENVELOPE_PRICES');

export function registerPrices(program: Command): void {
  const prices = program
    .command('prices')
    .description('model prices a USD budget uses: the maintained catalog, and your --prices file over it');
  prices
    .command('ls', { isDefault: true })
    .description('list every priced model (USD per million tokens)')
    .addOption(pricesOption())
    .option('--provider <id>', 'only this provider (anthropic, openai, google, deepseek, mistral, …)')
    .addOption(jsonOption())
    .action(async (o: PricesFlags) => {
      const own = loadPrices(o.prices) ?? {};
      const rows: PriceRow[] = [
        ...Object.entries(own).map(([model, price]) => ({ model, source: 'prices file', price })),
        ...(await catalogModels()).map((e) => ({ model: e.model, source: e.provider, price: e.price })),
      ].filter((r) => o.provider === undefined || r.source === o.provider);
      if (o.json) return printJson(rows);
      if (!rows.length) return console.log(`no prices for provider ${o.provider}; envelope prices ls lists every provider`);
      console.log(table(['model', 'source', 'input', 'output', 'cache write', 'cache read', 'long context'], rows.map(priceCells)));
      console.log(`\n${rows.length} models. Prices in USD per million tokens; a dated or aliased name resolves as \`envelope prices show NAME\` says.`);
    });
  prices
    .command('show <model>')
    .description('the price a model name resolves to, and where it comes from')
    .addOption(pricesOption())
    .addOption(jsonOption())
    .action((model: string, o: PricesFlags) => {
      const found = resolve(model, loadPrices(o.prices) ?? {});
      if (!found) {
        throw new Error(`no known price for ${model}; a USD budget on it is refused (price_unknown). Add it to a --prices file: ${PRICE_FILE_EXAMPLE.replace('my-model', model)}`);
      }
      if (o.json) return printJson({ model, ...found });
      console.log(`${model}: ${found.source === 'prices file' ? `your prices file (entry ${found.entry})` : `catalog: ${found.source}/${found.entry}`}`);
      console.log(table(['input', 'output', 'cache write', 'cache read', 'long context'], [priceCells({ model, source: found.source, price: found.price }).slice(2)]));
    });
}

function resolve(model: string, own: PriceTable): { source: string; entry: string; price: ModelPrice } | undefined {
  const mine = tablePrice(model, own);
  if (mine) return { source: 'prices file', entry: mine.key, price: mine.price };
  const c = catalogPrice(model);
  return c ? { source: c.provider, entry: c.model, price: c.price } : undefined;
}

const usd = (n: number): string => `$${Number(n.toPrecision(6))}`;

function priceCells(r: PriceRow): string[] {
  const p = r.price;
  const tiers = (p.tiers ?? []).map((t) => `>${t.aboveInputTokens.toLocaleString('en-US')}: ${usd(t.inputUsdPerMtok)}/${usd(t.outputUsdPerMtok)}`).join('; ');
  return [r.model, r.source, usd(p.inputUsdPerMtok), usd(p.outputUsdPerMtok), usd(p.cacheWriteUsdPerMtok), usd(p.cacheReadUsdPerMtok), tiers];
}
