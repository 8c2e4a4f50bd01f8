/**
 * Choosing the worker's platform: `enclavekit enclave --platform nitro|sev-snp|simulator`.
 * A simulator is always explicit; nothing here falls back to it when hardware is missing (that would
 * turn a misconfigured production worker into one that attests as `simulator` and gets no keys, or
 * worse, into one whose operator stops noticing).
 */
import { openSimulatorState } from '../sim-state.js';
import { NitroPlatform, type NitroPlatformOptions } from './nitro.js';
import { SevSnpPlatform, type SevSnpPlatformOptions } from './sev-snp.js';
import { imageIdFromFiles } from './sim-image.js';
import { SimNitroPlatform } from './sim-nitro.js';
import { SimSnpPlatform, simulatedMeasurement } from './sim-snp.js';
import type { Platform } from './types.js';

export type { AttestOptions, EvidenceFormat, PcrDescription, Platform, PlatformKind } from './types.js';
export { NitroPlatform, type NsmClientLike } from './nitro.js';
export { SevSnpPlatform } from './sev-snp.js';
export { SimNitroPlatform } from './sim-nitro.js';
export { SimSnpPlatform, simulatedMeasurement } from './sim-snp.js';
export { imageIdFromFiles, imageIdFromDigests, simulatedBootPcrs, type SimImageIdentity } from './sim-image.js';
export { snpReportData, splitSnpEvidence } from './sev-snp-binding.js';

export interface SimulatorPlatformChoice {
  kind: 'simulator';
  /** Which TEE to simulate (default nitro). */
  evidence?: 'nitro' | 'sev-snp';
  /** The simulator state folder (created on first use). */
  stateDir: string;
  /** Files making up the simulated image (the worker bundle); or `imageId` (48 bytes). */
  imageFiles?: readonly string[];
  imageId?: Uint8Array;
  instanceId?: string;
  /** SEV-SNP only: explicit MEASUREMENT instead of the one derived from the image. */
  measurement?: Uint8Array;
  now?: () => Date;
}

export type PlatformChoice =
  | ({ kind: 'nitro' } & NitroPlatformOptions)
  | ({ kind: 'sev-snp' } & SevSnpPlatformOptions)
  | SimulatorPlatformChoice;

export async function openPlatform(choice: PlatformChoice): Promise<Platform> {
  switch (choice.kind) {
    case 'nitro':
      return NitroPlatform.open(choice);
    case 'sev-snp':
      return SevSnpPlatform.open(choice);
    case 'simulator': {
      const now = choice.now ?? (() => new Date());
      const state = await openSimulatorState(choice.stateDir, { now: now() });
      const imageId = choice.imageId ?? (await imageIdFromFiles(choice.imageFiles ?? []));
      if ((choice.evidence ?? 'nitro') === 'nitro') {
        return new SimNitroPlatform({
          ca: state.nitroCa,
          identity: choice.instanceId === undefined ? { imageId } : { imageId, instanceId: choice.instanceId },
          now,
        });
      }
      return new SimSnpPlatform({ chain: state.snpChain, measurement: choice.measurement ?? simulatedMeasurement(imageId) });
    }
    default:
      throw new TypeError(`unknown platform kind ${JSON.stringify((choice as { kind?: unknown }).kind)}`);
  }
}
