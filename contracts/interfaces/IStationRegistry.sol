// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title Station registry interface
/// @notice Charge Point Operators (CPOs), their payout addresses, their stations (keyed by OCPP charge
///         point id) and the stations' tariffs and meter keys.
interface IStationRegistry {
    /// @notice A price list. Amounts are in the token's smallest unit. Packed in one storage slot.
    /// @param pricePerKWh Energy price per kWh (billed per Wh, rounded down).
    /// @param sessionFee Fixed fee per session.
    /// @param timeFeePerHour Time fee per hour of charging (billed per second, rounded down); 0 for none.
    struct Tariff {
        uint96 pricePerKWh;
        uint80 sessionFee;
        uint80 timeFeePerHour;
    }

    /// @notice A station with everything an off-chain reader needs.
    /// @param id Station id (1 to stationCount).
    /// @param operator The operator account that starts and settles the station's sessions.
    /// @param tariffId The station's current tariff; new sessions snapshot it.
    /// @param connectors Number of connectors, numbered from 1.
    /// @param active Whether drivers may open sessions there.
    /// @param chargePointId The OCPP charge point identity.
    /// @param meterPublicKey The station's P-256 meter key as 65 bytes 04 || x || y, empty if none is registered.
    struct StationInfo {
        uint32 id;
        address operator;
        uint32 tariffId;
        uint8 connectors;
        bool active;
        string chargePointId;
        bytes meterPublicKey;
    }

    /// @notice An operator's record.
    /// @param payout Address that receives the cost of every settled session.
    /// @param registered Whether the account is an operator.
    /// @param name Display name shown on invoices.
    struct Operator {
        address payout;
        bool registered;
        string name;
    }

    /// @notice `operator` was onboarded with `payout` as its payout address.
    event OperatorRegistered(address indexed operator, address payout, string name);
    /// @notice `operator`'s settlements pay `payout` from now on.
    event PayoutChanged(address indexed operator, address payout);
    /// @notice Station `stationId` of `operator` was registered for OCPP charge point `chargePointId`.
    event StationRegistered(uint32 indexed stationId, address indexed operator, string chargePointId, uint8 connectors);
    /// @notice Station `stationId` has tariff `tariffId` for sessions opened from now on.
    event TariffSet(uint32 indexed stationId, uint32 indexed tariffId, uint96 pricePerKWh, uint80 sessionFee, uint80 timeFeePerHour);
    /// @notice Station `stationId` was opened (`active`) or closed for new sessions.
    event StationActiveSet(uint32 indexed stationId, bool active);
    /// @notice Station `stationId`'s meter key changed to `publicKey` (empty: removed).
    event MeterPublicKeySet(uint32 indexed stationId, bytes publicKey);

    /// @notice An address that must not be zero was zero.
    error ZeroAddress();
    /// @notice `operator` is already an operator.
    error OperatorAlreadyRegistered(address operator);
    /// @notice `account` is not an operator.
    error NotOperator(address account);
    /// @notice There is no station `stationId`.
    error UnknownStation(uint32 stationId);
    /// @notice `account` is not the operator of station `stationId`.
    error NotStationOperator(uint32 stationId, address account);
    /// @notice Another station already has OCPP charge point id `chargePointId`.
    error ChargePointIdTaken(string chargePointId);
    /// @notice A charge point id must be 1 to `maxLength` bytes long; this one has `length`.
    error InvalidChargePointId(uint256 length, uint256 maxLength);
    /// @notice A station needs at least one connector.
    error InvalidConnectorCount(uint8 connectors);
    /// @notice There is no tariff `tariffId`.
    error UnknownTariff(uint32 tariffId);
    /// @notice Station `stationId`'s meter key already changed in this second (unix time): try again in the next.
    error MeterKeyChangedThisSecond(uint32 stationId);
    /// @notice A meter key must be a P-256 point: 64 bytes x || y, 65 bytes 04 || x || y, or 91 bytes of
    ///         DER SubjectPublicKeyInfo; the one given for station `stationId` (`length` bytes) is not.
    error InvalidMeterKey(uint32 stationId, uint256 length);

    /// @notice Onboard a CPO. Only REGISTRAR_ROLE.
    /// @param account The operator's account: it registers stations and starts and settles their sessions.
    /// @param payout Address that receives the cost of every settled session.
    /// @param name Display name shown on invoices.
    function registerOperator(address account, address payout, string calldata name) external;

    /// @notice Change the caller's payout address. Applies to sessions settled from now on.
    /// @param payout New payout address.
    function setPayout(address payout) external;

    /// @notice Register a station of the caller (an operator), active from now on.
    /// @param chargePointId The OCPP charge point identity (unique in the network, 1 to 48 bytes).
    /// @param connectors Number of connectors (1 to 255).
    /// @param tariff The station's first tariff.
    /// @param meterPublicKey Public key of the station's signing meter (as for setMeterPublicKey), or empty.
    /// @return stationId The new station's id.
    function addStation(string calldata chargePointId, uint8 connectors, Tariff calldata tariff, bytes calldata meterPublicKey)
        external
        returns (uint32 stationId);

    /// @notice Give a station a new tariff. Running and requested sessions keep the tariff they opened with.
    /// @param stationId The station (the caller must be its operator).
    /// @param tariff The new prices.
    /// @return tariffId Id of the new tariff record.
    function setTariff(uint32 stationId, Tariff calldata tariff) external returns (uint32 tariffId);

    /// @notice Open or close a station for new sessions. Running sessions are not affected.
    /// @param stationId The station (the caller must be its operator).
    /// @param active Whether drivers may open sessions there.
    function setActive(uint32 stationId, bool active) external;

    /// @notice Register, rotate or remove the P-256 public key of the station's signing meter. Sessions that
    ///         start from now on settle on records this key signed (settleSigned), or, once removed, with
    ///         settle; a session already running keeps the key (or no key) it started with, so a rotation
    ///         strands nothing in flight. One change per second (MeterKeyChangedThisSecond).
    /// @param stationId The station (the caller must be its operator).
    /// @param publicKey 64 bytes x || y, 65 bytes 04 || x || y, or the 91-byte DER SubjectPublicKeyInfo
    ///        meters publish; empty to remove.
    function setMeterPublicKey(uint32 stationId, bytes calldata publicKey) external;

    /// @notice The operator record of `account` (payout is zero if not registered).
    /// @param account The account.
    function operatorOf(address account) external view returns (Operator memory);

    /// @notice Everything about station `stationId`; reverts UnknownStation if there is none.
    /// @param stationId The station.
    function getStation(uint32 stationId) external view returns (StationInfo memory);

    /// @notice The meter key of station `stationId` at time `at` (unix seconds) as 65 bytes 04 || x || y, empty
    ///         if it had none: the key that settles a session started at `at`.
    /// @param stationId The station.
    /// @param at The time, e.g. a session's start.
    function meterPublicKeyAtTime(uint32 stationId, uint32 at) external view returns (bytes memory);

    /// @notice The station registered under an OCPP charge point id; reverts UnknownStation(0) if none.
    /// @param chargePointId The OCPP charge point identity.
    function stationByChargePoint(string calldata chargePointId) external view returns (StationInfo memory);

    /// @notice The tariff record `tariffId`; reverts UnknownTariff if there is none.
    /// @param tariffId The tariff.
    function getTariff(uint32 tariffId) external view returns (Tariff memory);

    /// @notice Price of a session under tariff `tariffId`, before the cap at the deposit.
    /// @param tariffId The tariff.
    /// @param energyWh Energy delivered in Wh.
    /// @param durationSeconds Charging time in seconds (only matters with a time fee).
    function quote(uint32 tariffId, uint256 energyWh, uint256 durationSeconds) external view returns (uint256);
}
