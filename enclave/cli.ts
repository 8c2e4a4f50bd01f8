export async function main(_argv: string[]): Promise<number> {
  process.stderr.write('enclavekit enclave: not implemented yet\n');
  return 2;
}
