// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {P256} from "@openzeppelin/contracts/utils/cryptography/P256.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {IStationRegistry} from "./interfaces/IStationRegistry.sol";

/// @title Station registry
/// @notice Charge Point Operators (CPOs), their payout addresses, their stations (keyed by OCPP charge
///         point id) and the stations' tariffs. Tariffs are immutable records: changing a station's
///         price appends a new tariff, so a session that snapshotted the old tariff id keeps its price.
/// @dev Abstract: the session escrow inherits it, so the hot paths (open, start, settle) read stations
///      and tariffs from their own storage instead of paying for a call into another contract.
abstract contract StationRegistry is IStationRegistry, AccessControl {
    using SafeCast for uint256;

    /// @notice Role allowed to onboard operators (the network's governance).
    bytes32 public constant REGISTRAR_ROLE = keccak256("REGISTRAR_ROLE");

    /// @notice The hot part of a station, packed in one storage slot. `metered`: it has a meter key;
    ///         `meterKeySince`: when its meter key was last set, rotated or removed (0: never).
    struct Station {
        address operator;
        uint32 tariffId;
        uint8 connectors;
        bool active;
        bool metered;
        uint32 meterKeySince;
    }

    /// @notice A station's meter key from the time it was set, and when the key before it was set: the
    ///         station's key history, so the key valid when a session started is the one that settles it.
    ///         A removal is a zero key.
    struct MeterKey {
        bytes32 x;
        bytes32 y;
        uint32 previousSince;
    }

    /// @dev DER SubjectPublicKeyInfo of a P-256 key up to the point's 04: the form meters publish their keys in.
    bytes27 private constant SPKI_P256_PREFIX = 0x3059301306072a8648ce3d020106082a8648ce3d03010703420004;

    uint256 private constant MAX_CHARGE_POINT_ID_LENGTH = 48;

    mapping(uint32 tariffId => Tariff) private _tariffs;
    mapping(uint32 stationId => Station) private _stations;
    mapping(uint32 stationId => string) private _chargePointIds;
    mapping(uint32 stationId => mapping(uint32 since => MeterKey)) private _meterKeys;
    mapping(bytes32 chargePointIdHash => uint32) private _stationIdByChargePoint;
    mapping(address account => Operator) private _operators;
    /// @notice Number of stations ever registered; station ids run from 1 to stationCount.
    uint32 public stationCount;
    /// @notice Number of tariffs ever set; tariff ids run from 1 to tariffCount (0 means none).
    /// @dev A mapping plus a counter, not an array: settle reads a tariff without an array-length load.
    uint32 public tariffCount;

    constructor(address admin) {
        if (admin == address(0)) revert ZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(REGISTRAR_ROLE, admin);
    }

    modifier onlyOperator() {
        if (!_operators[msg.sender].registered) revert NotOperator(msg.sender);
        _;
    }

    modifier onlyStationOperator(uint32 stationId) {
        _checkStationOperator(stationId);
        _;
    }

    /// @inheritdoc IStationRegistry
    function registerOperator(address account, address payout, string calldata name) external onlyRole(REGISTRAR_ROLE) {
        if (account == address(0) || payout == address(0)) revert ZeroAddress();
        if (_operators[account].registered) revert OperatorAlreadyRegistered(account);
        _operators[account] = Operator(payout, true, name);
        emit OperatorRegistered(account, payout, name);
    }

    /// @inheritdoc IStationRegistry
    function setPayout(address payout) external onlyOperator {
        if (payout == address(0)) revert ZeroAddress();
        _operators[msg.sender].payout = payout;
        emit PayoutChanged(msg.sender, payout);
    }

    /// @inheritdoc IStationRegistry
    function addStation(string calldata chargePointId, uint8 connectors, Tariff calldata tariff, bytes calldata meterPublicKey)
        external
        onlyOperator
        returns (uint32 stationId)
    {
        uint256 length = bytes(chargePointId).length;
        if (length == 0 || length > MAX_CHARGE_POINT_ID_LENGTH) revert InvalidChargePointId(length, MAX_CHARGE_POINT_ID_LENGTH);
        if (connectors == 0) revert InvalidConnectorCount(connectors);
        bytes32 key = keccak256(bytes(chargePointId));
        if (_stationIdByChargePoint[key] != 0) revert ChargePointIdTaken(chargePointId);

        stationId = ++stationCount;
        _stationIdByChargePoint[key] = stationId;
        _chargePointIds[stationId] = chargePointId;
        _stations[stationId] = Station(msg.sender, 0, connectors, true, false, 0);
        emit StationRegistered(stationId, msg.sender, chargePointId, connectors);
        _setTariff(stationId, tariff);
        if (meterPublicKey.length != 0) _setMeterPublicKey(stationId, meterPublicKey);
    }

    /// @inheritdoc IStationRegistry
    function setTariff(uint32 stationId, Tariff calldata tariff) external onlyStationOperator(stationId) returns (uint32 tariffId) {
        return _setTariff(stationId, tariff);
    }

    /// @inheritdoc IStationRegistry
    function setActive(uint32 stationId, bool active) external onlyStationOperator(stationId) {
        _stations[stationId].active = active;
        emit StationActiveSet(stationId, active);
    }

    /// @inheritdoc IStationRegistry
    function setMeterPublicKey(uint32 stationId, bytes calldata publicKey) external onlyStationOperator(stationId) {
        _setMeterPublicKey(stationId, publicKey);
    }

    /// @inheritdoc IStationRegistry
    function operatorOf(address account) external view returns (Operator memory) {
        return _operators[account];
    }

    /// @inheritdoc IStationRegistry
    function getStation(uint32 stationId) public view returns (StationInfo memory) {
        Station memory s = _stations[stationId];
        if (s.operator == address(0)) revert UnknownStation(stationId);
        bytes memory meterKey = meterPublicKeyAtTime(stationId, s.meterKeySince);
        return StationInfo(stationId, s.operator, s.tariffId, s.connectors, s.active, _chargePointIds[stationId], meterKey);
    }

    /// @inheritdoc IStationRegistry
    function meterPublicKeyAtTime(uint32 stationId, uint32 at) public view returns (bytes memory) {
        (bytes32 x, bytes32 y) = _meterPublicKeyAtTime(stationId, at);
        return x | y == 0 ? bytes("") : abi.encodePacked(bytes1(0x04), x, y);
    }

    /// @inheritdoc IStationRegistry
    function stationByChargePoint(string calldata chargePointId) external view returns (StationInfo memory) {
        return getStation(_stationIdByChargePoint[keccak256(bytes(chargePointId))]);
    }

    /// @inheritdoc IStationRegistry
    function getTariff(uint32 tariffId) external view returns (Tariff memory) {
        return _knownTariff(tariffId);
    }

    /// @inheritdoc IStationRegistry
    function quote(uint32 tariffId, uint256 energyWh, uint256 durationSeconds) external view returns (uint256) {
        _knownTariff(tariffId);
        return _price(tariffId, energyWh, durationSeconds);
    }

    /// @dev What `energyWh` and `durationSeconds` cost at tariff `tariffId`, read in place (no copy to memory).
    function _price(uint32 tariffId, uint256 energyWh, uint256 durationSeconds) internal view returns (uint256) {
        Tariff storage t = _tariffs[tariffId];
        (uint256 sessionFee, uint256 pricePerKWh, uint256 timeFeePerHour) = (t.sessionFee, t.pricePerKWh, t.timeFeePerHour);
        return sessionFee + (energyWh * pricePerKWh) / 1000 + (durationSeconds * timeFeePerHour) / 3600;
    }

    /// @dev Tariff `tariffId`, which must exist.
    function _knownTariff(uint32 tariffId) private view returns (Tariff storage) {
        if (tariffId == 0 || tariffId > tariffCount) revert UnknownTariff(tariffId);
        return _tariffs[tariffId];
    }

    function _station(uint32 stationId) internal view returns (Station storage) {
        return _stations[stationId];
    }

    function _payoutOf(address operator) internal view returns (address) {
        return _operators[operator].payout;
    }

    /// @dev The meter key station `stationId` had at time `at` (zero: none): the latest key set at or before
    ///      `at`, found by walking back from the current one (no step while the key is older than `at`).
    function _meterPublicKeyAtTime(uint32 stationId, uint32 at) internal view returns (bytes32 x, bytes32 y) {
        mapping(uint32 since => MeterKey) storage keys = _meterKeys[stationId];
        uint32 since = _stations[stationId].meterKeySince;
        while (since > at) since = keys[since].previousSince;
        MeterKey storage key = keys[since];
        return (key.x, key.y);
    }

    function _checkStationOperator(uint32 stationId) internal view {
        address operator = _stations[stationId].operator;
        if (operator == address(0)) revert UnknownStation(stationId);
        if (operator != msg.sender) revert NotStationOperator(stationId, msg.sender);
    }

    /// @dev The meter flags of station `stationId`, which must exist and be the caller's: whether it has a meter
    ///      key now, and since when (0: never had one).
    function _operatedStationMeter(uint32 stationId) internal view returns (bool metered, uint32 meterKeySince) {
        Station storage station = _stations[stationId];
        address operator = station.operator;
        (metered, meterKeySince) = (station.metered, station.meterKeySince);
        if (operator == address(0)) revert UnknownStation(stationId);
        if (operator != msg.sender) revert NotStationOperator(stationId, msg.sender);
    }

    function _setTariff(uint32 stationId, Tariff calldata tariff) private returns (uint32 tariffId) {
        tariffId = ++tariffCount;
        _tariffs[tariffId] = tariff;
        _stations[stationId].tariffId = tariffId;
        emit TariffSet(stationId, tariffId, tariff.pricePerKWh, tariff.sessionFee, tariff.timeFeePerHour);
    }

    function _setMeterPublicKey(uint32 stationId, bytes calldata publicKey) private {
        Station storage station = _stations[stationId];
        uint256 length = publicKey.length;
        bytes32 x;
        bytes32 y;
        if (length != 0) {
            bool framed = length == 64 || (length == 65 && publicKey[0] == 0x04)
                || (length == 91 && bytes27(publicKey[:27]) == SPKI_P256_PREFIX);
            x = framed ? bytes32(publicKey[length - 64:length - 32]) : bytes32(0);
            y = framed ? bytes32(publicKey[length - 32:]) : bytes32(0);
            if (!framed || !P256.isValidPublicKey(x, y)) revert InvalidMeterKey(stationId, length);
        }
        uint32 now_ = block.timestamp.toUint32();
        uint32 since = station.meterKeySince;
        // One change per second: the history holds one key per second, and every change writes fresh slots,
        // so its gas does not depend on the block it lands in (a gas estimate stays valid).
        if (since == now_) revert MeterKeyChangedThisSecond(stationId);
        MeterKey storage key = _meterKeys[stationId][now_];
        (key.x, key.y, key.previousSince) = (x, y, since);
        station.metered = length != 0;
        station.meterKeySince = now_;
        emit MeterPublicKeySet(stationId, publicKey);
    }
}
